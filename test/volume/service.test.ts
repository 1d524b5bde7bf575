// The volume service over a real store and fake host, QMP and agent: what runs where, in which order, and that a
// refused or failed operation leaves nothing (no file, no row, no attachment).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { AgentSession, ExecRequest } from '../../src/agent/port.js';
import { isHangarError } from '../../src/errors.js';
import { Store, type NewVm } from '../../src/store/store.js';
import type { MachineSpec } from '../../src/vmm/types.js';
import { VolumeService } from '../../src/volume/service.js';
import type { HostStep } from '../../src/volume/plan.js';

function world(opts: { failMount?: boolean; diskQuota?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-volsvc-'));
  const store = new Store(join(dir, 'state.db'));
  const host: HostStep[] = [];
  const qmp: { vm: string; cmd: string; args: Record<string, unknown> | undefined }[] = [];
  const guest: { vm: string; argv: string[] }[] = [];
  /** Per VM and slot: the file node and file QEMU holds now (what query-named-block-nodes answers). */
  const slots = new Map<string, { node: string; file: string | null }>();
  const running = new Set<string>();
  const spec = (id: string): MachineSpec => ({ id, kernelPath: '/k', rootfsPath: '/r', bootArgs: '', vcpus: 1, memMiB: 512, consoleLogPath: '/c', runDir: '/d' });
  const addVm = (id: string, state: NewVm['state'] = 'creating') => {
    store.insertVm({ id, name: id, state, imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: `/run/${id}`, spec: spec(id), net: null });
    for (const s of [0, 1]) slots.set(`${id}/${s}`, { node: `vol${s}-null`, file: null });
  };
  const boot = (id: string) => { store.setState(id, 'booting'); store.setState(id, 'ready'); running.add(id); };
  const session = (vm: string): AgentSession => ({
    exec: async (req: ExecRequest) => {
      guest.push({ vm, argv: req.argv! });
      const fail = opts.failMount && req.argv![7] === 'mount';
      return { proc: 'p', pid: 1, stdout: Readable.from([Buffer.from(fail ? '' : '/dev/vdb\n')]), stderr: Readable.from([Buffer.from(fail ? 'mount: wrong fs type' : '')]), stdin: null, exit: Promise.resolve({ code: fail ? 32 : 0, signal: null, timedOut: false }), signal: async () => {}, resize: async () => {}, detach: () => {} };
    },
  }) as unknown as AgentSession;
  const svc = new VolumeService({
    volumes: store.volumes, vm: (id) => store.getVm(id), setSpec: (id, s) => store.patchVm(id, { spec: s }),
    monitor: (id) => (running.has(id) ? async (cmd, args) => {
      qmp.push({ vm: id, cmd, args });
      if (cmd === 'query-named-block-nodes') return [0, 1].map((s) => { const x = slots.get(`${id}/${s}`)!; return { 'node-name': x.node, image: { filename: x.file ?? 'json:{"driver":"null-co"}' } }; }).concat([{ 'node-name': 'vol0', image: { filename: 'x' } }]);
      if (cmd === 'blockdev-reopen') {
        const o = (args!.options as { 'node-name': string; file: string }[])[0]!;
        const slot = Number(o['node-name'].slice(3));
        const added = qmp.filter((q) => q.cmd === 'blockdev-add').at(-1)!.args!;
        slots.set(`${id}/${slot}`, { node: o.file, file: (added.filename as string | undefined) ?? null });
      }
      return {};
    } : null),
    agents: { session: async (vm) => session(vm) },
    quotas: () => ({ quotas: opts.diskQuota === undefined ? null : { vms: null, vcpus: null, memMiB: null, diskMiB: opts.diskQuota, viewers: null }, vmDiskMiB: 0 }),
    dir: join(dir, 'volumes'),
    run: async (s) => { host.push(s); if (s.cmd === 'truncate') writeFileSync(s.args.at(-1)!, ''); if (s.cmd === 'cp') writeFileSync(s.args.at(-1)!, ''); },
  });
  return { dir, store, svc, host, qmp, guest, slots, addVm, boot, cleanup: () => { store.close(); rmSync(dir, { recursive: true, force: true }); } };
}

test('create: the file is made then recorded; bad input, a taken name or a quota leaves no file', async () => {
  const w = world({ diskQuota: 100 });
  try {
    const v = await w.svc.create('default', { name: 'data', sizeMiB: 64 });
    assert.deepEqual(w.host.map((s) => s.cmd), ['truncate', 'mkfs.ext4']);
    assert.ok(existsSync(v.file));
    for (const body of [{ name: 'Bad', sizeMiB: 64 }, { name: 'x', sizeMiB: 1 }, { name: 'data', sizeMiB: 16 }, { name: 'big', sizeMiB: 64 }]) {
      await assert.rejects(w.svc.create('default', body), (e: unknown) => isHangarError(e) && ['INVALID_ARGUMENT', 'VOLUME_EXISTS', 'QUOTA_EXCEEDED'].includes(e.code), JSON.stringify(body));
    }
    assert.deepEqual(readdirSync(join(w.dir, 'volumes')), [`${v.id}.ext4`], 'no file left by a refused create');
    assert.equal(w.store.volumes.list().length, 1);
  } finally {
    w.cleanup();
  }
});

test('attach to a running VM: recorded, swapped in through QMP, mounted by the agent, kept in the spec; detach undoes it', async () => {
  const w = world();
  try {
    const v = await w.svc.create('default', { name: 'data', sizeMiB: 64 });
    w.addVm('vm-a');
    await assert.rejects(w.svc.attach('vm-a', { name: 'data', path: '/data' }), (e: unknown) => isHangarError(e, 'VM_INVALID_STATE'), 'not running yet');
    w.boot('vm-a');
    const a = await w.svc.attach('vm-a', { name: 'data', path: '/data' });
    assert.equal(a.slot, 0);
    assert.deepEqual(w.qmp.map((q) => q.cmd), ['query-named-block-nodes', 'blockdev-add', 'blockdev-reopen', 'block_resize', 'blockdev-del']);
    assert.deepEqual(w.qmp[3]!.args, { 'node-name': 'vol0', size: 64 * 1024 * 1024 });
    assert.deepEqual(w.guest.map((g) => g.argv.slice(5, 8)), [['/data', 'rw', 'mount']]);
    assert.deepEqual(w.store.getVm('vm-a')!.spec!.volumes, [{ file: v.file, readOnly: false }, null], 'a restore reopens it');
    // Idempotent: a second ensure (a ready event after a restore) swaps nothing and mounts again (a no-op in the guest).
    w.qmp.length = 0;
    await w.svc.ensure('vm-a');
    assert.deepEqual(w.qmp.map((q) => q.cmd), ['query-named-block-nodes']);
    // A second writer is refused, by the running path and by create's precheck.
    w.addVm('vm-b');
    w.boot('vm-b');
    await assert.rejects(w.svc.attach('vm-b', { name: 'data', path: '/data' }), (e: unknown) => isHangarError(e, 'VOLUME_IN_USE'));
    assert.throws(() => w.svc.precheck('default', [{ name: 'data', path: '/x' }]), (e: unknown) => isHangarError(e, 'VOLUME_IN_USE'));
    await w.svc.detach('vm-a', 'data');
    assert.deepEqual(w.guest.at(-1)!.argv.slice(5, 8), ['/data', 'rw', 'umount']);
    assert.equal(w.slots.get('vm-a/0')!.file, null, 'the slot is empty again');
    assert.deepEqual(w.store.getVm('vm-a')!.spec!.volumes, [null, null]);
    await w.svc.attach('vm-b', { name: 'data', path: '/data' });
  } finally {
    w.cleanup();
  }
});

test('a failed mount undoes the swap and the record: the volume stays free', async () => {
  const w = world({ failMount: true });
  try {
    await w.svc.create('default', { name: 'data', sizeMiB: 64 });
    w.addVm('vm-a');
    w.boot('vm-a');
    await assert.rejects(w.svc.attach('vm-a', { name: 'data', path: '/data' }), (e: unknown) => isHangarError(e, 'VOLUME_ATTACH_FAILED') && /wrong fs type/.test(e.message));
    assert.deepEqual(w.store.volumes.attachmentsOfVm('vm-a'), []);
    assert.equal(w.slots.get('vm-a/0')!.file, null);
  } finally {
    w.cleanup();
  }
});

test('resize: grows offline when unattached, online in a ready VM, never shrinks; snapshot copies; remove refuses while attached', async () => {
  const w = world();
  try {
    const v = await w.svc.create('default', { name: 'data', sizeMiB: 64 });
    w.host.length = 0;
    await w.svc.resize('default', 'data', 100);
    assert.deepEqual(w.host.map((s) => s.cmd), ['truncate', 'e2fsck', 'resize2fs']);
    await assert.rejects(w.svc.resize('default', 'data', 64), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
    w.addVm('vm-a');
    w.boot('vm-a');
    await w.svc.attach('vm-a', { name: 'data', path: '/data' });
    w.host.length = 0;
    w.qmp.length = 0;
    await w.svc.resize('default', 'data', 128);
    assert.deepEqual(w.host.map((s) => s.cmd), ['truncate']);
    assert.deepEqual(w.qmp.map((q) => [q.cmd, q.args]), [['block_resize', { 'node-name': 'vol0', size: 128 * 1024 * 1024 }]]);
    assert.equal(w.guest.at(-1)!.argv[7], 'grow');
    const copy = await w.svc.snapshot('default', 'data', { name: 'copy' });
    assert.equal(copy.source, v.id);
    assert.equal(copy.sizeMiB, 128);
    assert.deepEqual(w.guest.at(-1)!.argv, ['sync'], 'the writer flushes before the copy');
    await assert.rejects(w.svc.remove('default', 'data'), (e: unknown) => isHangarError(e, 'VOLUME_IN_USE'));
    await w.svc.remove('default', 'copy');
    assert.ok(!existsSync(copy.file));
    await assert.rejects(w.svc.remove('acme', 'data'), (e: unknown) => isHangarError(e, 'VOLUME_NOT_FOUND'), 'another tenant\'s volume is not found');
  } finally {
    w.cleanup();
  }
});

test('release before a destroy: each volume of a ready VM is unmounted in the guest (release, no restart); a failure or a stopped VM changes nothing', async () => {
  const w = world();
  try {
    await w.svc.create('default', { name: 'data', sizeMiB: 64 });
    await w.svc.create('default', { name: 'profile', sizeMiB: 64 });
    w.addVm('vm-a');
    await w.svc.release('vm-a');
    assert.equal(w.guest.length, 0, 'not ready: nothing runs in the guest');
    w.boot('vm-a');
    await w.svc.attach('vm-a', { name: 'data', path: '/data' });
    await w.svc.attach('vm-a', { name: 'profile', path: '/home/hangar/.config/chromium' });
    w.guest.length = 0;
    await w.svc.release('vm-a');
    assert.deepEqual(w.guest.map((g) => g.argv.slice(5, 8)), [['/data', 'rw', 'release'], ['/home/hangar/.config/chromium', 'rw', 'release']]);
    assert.equal(w.store.volumes.attachmentsOfVm('vm-a').length, 2, 'the records go with the VM, not here');
    await w.svc.release('vm-gone');
  } finally {
    w.cleanup();
  }
});
