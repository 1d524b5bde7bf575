// The boot plans (src/vm/boot.ts) with every port faked: the named step lists of a cold boot and of a restore,
// the order in which effects happen, and which undos run — in reverse — when a step fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONSOLE_RESTORED_MARKER } from '../../src/guest-protocol.js';
import type { VmNet } from '../../src/domain/vm.js';
import { isHangarError } from '../../src/errors.js';
import { bootSteps, type BootCtx, type BootFrom, type BootPorts } from '../../src/vm/boot.js';
import { runSteps } from '../../src/util/steps.js';
import type { VmmDriver, VmmHandle } from '../../src/vmm/driver.js';
import type { MachineSpec, ProcessExit } from '../../src/vmm/types.js';
import { fakeNetwork } from '../support/fake-network.js';

const spec: MachineSpec = {
  id: 'vm-1', kernelPath: '/k', rootfsPath: '/run/vm-1/rootfs.ext4', bootArgs: 'console=ttyS0', vcpus: 1, memMiB: 512,
  consoleLogPath: '/run/vm-1/console.log', runDir: '/run/vm-1',
};
const net = { ip: '10.0.0.2', tap: 'hgtap0' } as VmNet;

function fakes(opts: { failAt?: string; diskExists?: boolean } = {}): { ports: BootPorts; log: string[] } {
  const log: string[] = [];
  const maybeFail = (what: string): void => {
    log.push(what);
    if (opts.failAt === what) throw new Error(`${what} failed`);
  };
  const handle: VmmHandle = {
    kind: 'qemu', pid: 42, spec,
    pause: async () => { maybeFail('pause'); },
    resume: async () => { maybeFail('resume'); },
    status: async () => 'running',
    stop: async () => { log.push('vmm stop'); return { code: 0, signal: null, by: 'hangar', at: '' } satisfies ProcessExit; },
    exited: new Promise(() => {}),
    saveState: async () => { throw new Error('not here'); },
    afterResume: async () => { maybeFail('resync'); return { sentAt: 1, guestTime: 1, agent: true }; },
  };
  const driver: VmmDriver = {
    kind: 'qemu', stateFiles: ['state.bin'],
    probe: async () => ({ kind: 'qemu', available: true, reason: '' }),
    start: async () => { maybeFail('vmm start'); return handle; },
    adopt: async () => null,
    restoreRefusal: async () => null,
    restore: async () => { maybeFail('vmm restore'); return handle; },
  };
  const ports: BootPorts = {
    disks: {
      exists: async () => opts.diskExists ?? false,
      copy: async (from) => { maybeFail(`disk copy from ${from}`); return () => { log.push('disk remove'); }; },
    },
    network: Object.assign(fakeNetwork(), { attach: async () => { maybeFail('net attach'); return () => { log.push('net detach'); }; } }),
    driver,
    recordBooting: () => { log.push('record booting'); },
    recordPid: (pid) => { log.push(`record pid ${pid}`); },
    resetConsole: async () => { log.push('console reset'); },
    appendConsole: async (_p, line) => { log.push(`console append ${line.trim().split(' ')[0]}`); },
    waitGuestReady: async () => { maybeFail('guest ready'); },
    waitDesktop: async () => { maybeFail('desktop'); },
    now: () => new Date(0),
  };
  return { ports, log };
}

const cold: BootFrom = { kind: 'cold', imageDisk: '/img/rootfs.ext4', fresh: true };
const restore: BootFrom = { kind: 'restore', stateDir: '/snap', restore: {}, diskFrom: '/snap/disk.ext4', what: 'snapshot snap-1' };

test('cold boot: disk, network, VMM, guest ready, desktop — in that order; the disk is not on the running stack', async () => {
  const { ports, log } = fakes();
  const steps = bootSteps('vm-1', spec, net, cold, ports, new AbortController().signal);
  assert.deepEqual(steps.map((s) => s.name), ['vm-1: disk', 'vm-1: tap hgtap0', 'vm-1: start qemu', 'vm-1: guest ready', 'vm-1: desktop answers']);
  const ctx: BootCtx = {};
  const { stack } = await runSteps(steps, ctx);
  assert.deepEqual(log, ['disk copy from /img/rootfs.ext4', 'net attach', 'record booting', 'console reset', 'vmm start', 'record pid 42', 'guest ready', 'desktop']);
  assert.equal(ctx.handle?.pid, 42);
  // A stop of the running VM undoes its VMM and network, never its disk.
  assert.deepEqual(stack.names, ['vm-1: tap hgtap0', 'vm-1: start qemu']);
});

test('cold boot that fails waiting for the guest: VMM, network, then the copied disk are undone, in reverse', async () => {
  const { ports, log } = fakes({ failAt: 'guest ready' });
  await assert.rejects(runSteps(bootSteps('vm-1', spec, net, cold, ports, new AbortController().signal), {}), /guest ready failed/);
  assert.deepEqual(log.slice(log.indexOf('guest ready')), ['guest ready', 'vmm stop', 'net detach', 'disk remove']);
});

test('a restart boots the disk it has (no copy); a missing disk is copied anew from the image', async () => {
  const kept = fakes({ diskExists: true });
  await runSteps(bootSteps('vm-1', spec, net, { ...cold, fresh: false } as BootFrom, kept.ports, new AbortController().signal), {});
  assert.equal(kept.log.some((l) => l.startsWith('disk copy')), false);
  const gone = fakes({ diskExists: false });
  await runSteps(bootSteps('vm-1', spec, net, { ...cold, fresh: false } as BootFrom, gone.ports, new AbortController().signal), {});
  assert.ok(gone.log.includes('disk copy from /img/rootfs.ext4'));
});

test('restore: disk, network, VMM loads the state, resume, then resync beside the desktop check; the console is appended to', async () => {
  const { ports, log } = fakes();
  let consumed = false;
  const from: BootFrom = { ...restore, consumed: async () => { consumed = true; log.push('consumed'); } } as BootFrom;
  const steps = bootSteps('vm-1', spec, { ...net, clone: { netns: 'hgc-1' } } as VmNet, from, ports, new AbortController().signal);
  assert.deepEqual(steps.map((s) => s.name), ['vm-1: disk', 'vm-1: clone network hgc-1', 'vm-1: restore qemu from snapshot snap-1', 'vm-1: resume', 'vm-1: resync and desktop answers']);
  const ctx: BootCtx = {};
  await runSteps(steps, ctx);
  assert.deepEqual(log, ['disk copy from /snap/disk.ext4', 'net attach', 'record booting', `console append ${CONSOLE_RESTORED_MARKER}`, 'vmm restore', 'record pid 42', 'resume', 'consumed', 'resync', 'desktop']);
  assert.equal(consumed, true);
  assert.deepEqual(ctx.sync, { sentAt: 1, guestTime: 1, agent: true });
  assert.equal(log.includes('console reset'), false, 'a restore never rewrites the console history');
});

test('a restore whose VMM fails to load: network and copied disk undone; the saved state is not consumed', async () => {
  const { ports, log } = fakes({ failAt: 'vmm restore' });
  let consumed = false;
  await assert.rejects(runSteps(bootSteps('vm-1', spec, net, { ...restore, consumed: async () => { consumed = true; } } as BootFrom, ports, new AbortController().signal), {}));
  assert.deepEqual(log.slice(log.indexOf('vmm restore')), ['vmm restore', 'net detach', 'disk remove']);
  assert.equal(consumed, false);
});

test('a failed resync is evidence, not a failed boot', async () => {
  const { ports } = fakes({ failAt: 'resync' });
  const ctx: BootCtx = {};
  await runSteps(bootSteps('vm-1', spec, net, restore, ports, new AbortController().signal), ctx);
  assert.deepEqual(ctx.sync, { error: 'resync failed' });
});

test('a hibernated VM whose disk is gone is refused before any network or VMM', async () => {
  const { ports, log } = fakes({ diskExists: false });
  await assert.rejects(runSteps(bootSteps('vm-1', spec, net, { ...restore, diskFrom: null } as BootFrom, ports, new AbortController().signal), {}),
    (e: unknown) => isHangarError(e, 'SNAPSHOT_FAILED') && e.message.includes(spec.rootfsPath));
  assert.deepEqual(log, []);
});
