// The doctor's fault-injection matrix: real boots under TCG on a private test network (createTestController), one
// fault at a time, and for each the fault's own finding must come out of runDoctor as the most likely cause. Network
// faults are applied to the test's VM namespace after a healthy VM is up and reverted (the VM is checked healthy
// again before the next fault); boot-argument and identity faults go through the manager's specOverride seam; guest
// faults through copies of the image's rootfs with an init hook; kernel faults through kernel variants built from
// the image pipeline's cached kernel tree (cached by config; the first build is slow, see kernel-variants.ts).
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDoctor } from '../../src/doctor/doctor.js';
import type { DoctorReport } from '../../src/doctor/model.js';
import { resolveImage, type ImageInfo } from '../../src/image/store.js';
import type { VmNetPlan } from '../../src/net/plan.js';
import type { VmRecord } from '../../src/store/store.js';
import { run } from '../../src/util/exec.js';
import { normalizeCreate } from '../../src/vm/input.js';
import { createTestController, imageSkipReason, type TestController } from '../support/controller.js';
import { skipUnlessRoot } from '../support/env.js';
import {
  appendBootArgs, bridgeWithoutGateway, DMA_WARNING_HOOK, forgetNeighbour, forwardDropWithBrNetfilter, NO_VNC_HOOK, READDRESS_HOOK, rootfsVariant,
  specOverrides, tapDown, tapNoMaster, variantSource, waitConsole, withMac,
} from '../support/faults.js';
import { buildKernelVariants, makeVariantImage, MATRIX_KERNEL_VARIANTS, type VariantResult } from '../support/kernel-variants.js';

const skip = skipUnlessRoot() || (await imageSkipReason()) || false;

/** One line per finding, for assertion messages. */
const summary = (r: DoctorReport): string => r.findings.map((f) => `${f.code}:${f.severity}${f.causedBy ? `<${f.causedBy.join('|')}` : ''}`).join(' ');

function assertTop(r: DoctorReport, code: string): void {
  const top = r.findings[0];
  assert.equal(r.mostLikelyCause?.code, code, `most likely cause; findings: ${summary(r)}; top evidence: ${JSON.stringify(top?.evidence.slice(0, 4))}`);
  assert.equal(r.findings[0]?.code, code);
  assert.equal(r.ok, false, 'the fault is an error');
}

function assertHealthy(r: DoctorReport, why: string): void {
  assert.equal(r.ok, true, `${why}: ${summary(r)}`);
  assert.equal(r.mostLikelyCause, null, `${why}: ${summary(r)}`);
}

describe('doctor fault matrix: real boots, one fault at a time', { skip, concurrency: false }, () => {
  let t: TestController;
  let base: ImageInfo;
  let tmp: string;
  const variants: ImageInfo[] = [];
  const overrides = specOverrides();
  let healthy: VmRecord;
  let vmNs: string;

  const doctor = (vm: string, bootGraceMs?: number): Promise<DoctorReport> => runDoctor({ manager: t.manager }, { vm, ...(bootGraceMs !== undefined ? { bootGraceMs } : {}) });
  const plan = (vm: VmRecord): VmNetPlan => vm.net as unknown as VmNetPlan;
  async function boot(name: string, image?: string): Promise<{ vm: VmRecord; ready: Promise<VmRecord> }> {
    const c = await t.manager.create(normalizeCreate({ name, ...(image ? { image } : {}) }));
    c.ready.catch(() => undefined); // faults make some boots fail; each test inspects the VM itself
    return c;
  }
  const consoleOf = (vm: VmRecord): string => t.manager.consolePath(vm.id);
  const settle = async (p: Promise<unknown>): Promise<void> => { await p.catch(() => undefined); };

  before(async () => {
    base = await resolveImage('desktop');
    tmp = mkdtempSync(join(tmpdir(), 'hangar-faults-'));
    t = await createTestController({ manager: { images: variantSource(() => variants), specOverride: overrides.specOverride } });
    vmNs = t.net.vmNetns!;
  });
  after(async () => {
    await t?.destroy();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('a healthy host and VM: no error, in under 3 s', async (c) => {
    healthy = await (await boot('healthy')).ready;
    const r = await doctor(healthy.id);
    c.diagnostic(`healthy doctor: ${r.durationMs} ms, ${r.checks.length} checks; findings ${summary(r)}`);
    assertHealthy(r, 'healthy VM');
    assert.ok(r.durationMs < 3000, `doctor took ${r.durationMs} ms`);
    assert.ok(r.checks.every((ch) => ch.status !== 'error' && ch.status !== 'warning'), 'no check complains');
    for (const id of ['host.accel', 'host.tun', 'host.bridge', 'host.link', 'host.forwarding', 'host.netfilter', 'image.lint', 'image.rootfs', 'image.init', 'vm.tap', 'vm.neighbour', 'vm.icmp', 'vm.vnc', 'vm.console']) {
      const ch = r.checks.find((x) => x.id === id);
      assert.ok(ch && ch.status !== 'skipped', `${id} ran`);
      assert.ok(ch.ran.length > 0, `${id} says what it ran`);
    }
  });

  /** Applies a namespace fault to the healthy VM, checks the doctor names it first, reverts, checks healthy again. */
  async function netFault(c: TestContext, name: string, inject: () => Promise<() => Promise<void>>, code: string): Promise<DoctorReport> {
    const undo = await inject();
    let r: DoctorReport;
    try {
      r = await doctor(healthy.id);
      c.diagnostic(`${name}: ${r.durationMs} ms; ${summary(r)}`);
    } finally {
      await undo();
    }
    assertTop(r, code);
    assertHealthy(await doctor(healthy.id), `after reverting "${name}"`);
    return r;
  }

  test('TAP left down → DOC_TAP_DOWN', async (c) => {
    await netFault(c, 'TAP down', () => tapDown(vmNs, plan(healthy).tap), 'DOC_TAP_DOWN');
  });

  test('TAP not on the bridge → DOC_TAP_NOT_ON_BRIDGE', async (c) => {
    await netFault(c, 'TAP nomaster', () => tapNoMaster(vmNs, plan(healthy).tap, t.net.cfg.bridge), 'DOC_TAP_NOT_ON_BRIDGE');
  });

  test('bridge without its gateway address → DOC_BRIDGE_NO_GATEWAY', async (c) => {
    const gw = `${t.net.cfg.gateway}/${t.net.cfg.prefix}`;
    await netFault(c, 'no gateway', () => bridgeWithoutGateway(vmNs, t.net.cfg.bridge, gw), 'DOC_BRIDGE_NO_GATEWAY');
  });

  test('FORWARD drop policy with br_netfilter in the VM namespace → DOC_FORWARD_DROP', async (c) => {
    let br: Awaited<ReturnType<typeof forwardDropWithBrNetfilter>>['brNetfilter'] | undefined;
    const r = await netFault(c, 'FORWARD DROP', async () => {
      const f = await forwardDropWithBrNetfilter(vmNs);
      br = f.brNetfilter;
      return f.undo;
    }, 'DOC_FORWARD_DROP');
    c.diagnostic(`br_netfilter: ${br?.active ? `active${br.loadedHere ? ' (loaded by this test, unloaded after)' : ' (already there; left as found)'}` : br?.reason}`);
    const top = r.mostLikelyCause!;
    if (br?.active) assert.match(top.message, /br_netfilter/);
    assert.ok(top.evidence.some((e) => e.text === '-P FORWARD DROP'), 'the policy is the evidence');
  });

  test('a second VM with the same MAC → DOC_DUPLICATE_MAC', async (c) => {
    overrides.set('dup-mac', withMac(plan(healthy).mac));
    const b = await boot('dup-mac');
    try {
      await waitConsole(consoleOf(b.vm), /HANGAR-NET eth0 \d/);
      const r = await doctor(healthy.id);
      c.diagnostic(`duplicate MAC (doctor on the first VM): ${r.durationMs} ms; ${summary(r)}`);
      assertTop(r, 'DOC_DUPLICATE_MAC');
      assert.ok(r.mostLikelyCause!.evidence.some((e) => e.text.includes(b.vm.id)), 'names the other VM');
      const rb = await doctor(b.vm.id);
      c.diagnostic(`duplicate MAC (doctor on the second VM): ${summary(rb)}`);
      assertTop(rb, 'DOC_DUPLICATE_MAC');
    } finally {
      await t.manager.destroy(b.vm.id);
      await settle(b.ready);
      // Its address mapped to the copied MAC: a later VM given that address would inherit a stale entry.
      await forgetNeighbour(vmNs, plan(b.vm).ip, t.net.cfg.bridge);
    }
    // The bridge forgets the MAC with the second TAP; the first VM is healthy again once it answers.
    await run('ping', ['-c', '1', '-W', '2', plan(healthy).ip], { netns: vmNs, allowFailure: true });
    assertHealthy(await doctor(healthy.id), 'after destroying the duplicate');
  });

  test('a guest service re-addresses eth0 after boot → DOC_GUEST_READDRESSED', async (c) => {
    variants.push(await rootfsVariant(base, tmp, 'desktop-fault-readdress', [READDRESS_HOOK]));
    const g = await boot('readdress', 'desktop-fault-readdress');
    try {
      const vm = await g.ready; // the address held at boot: the controller reached the desktop
      await run('ping', ['-c', '1', '-W', '2', plan(vm).ip], { netns: vmNs, allowFailure: true }); // the service's trigger
      c.diagnostic(await waitConsole(consoleOf(vm), /test-fault: eth0 re-addressed/, 60_000));
      const r = await doctor(vm.id);
      c.diagnostic(`re-addressed: ${r.durationMs} ms; ${summary(r)}`);
      assertTop(r, 'DOC_GUEST_READDRESSED');
    } finally {
      await t.manager.destroy(g.vm.id);
    }
  });

  test('the VNC server is not running → DOC_VNC_REFUSED', async (c) => {
    variants.push(await rootfsVariant(base, tmp, 'desktop-fault-no-vnc', [NO_VNC_HOOK]));
    const g = await boot('no-vnc', 'desktop-fault-no-vnc');
    try {
      c.diagnostic(await waitConsole(consoleOf(g.vm), /test-fault: x11vnc pid \d+ killed/));
      // Within the boot grace period an unready guest is not an error; past it, it is.
      const early = await doctor(g.vm.id, 10 * 60_000);
      c.diagnostic(`no VNC, still in the boot grace: ${summary(early)}; top evidence ${JSON.stringify(early.findings[0]?.evidence.slice(0, 4))}`);
      assert.equal(early.findings[0]?.code, 'DOC_VNC_REFUSED');
      assert.notEqual(early.findings[0]?.severity, 'error');
      const r = await doctor(g.vm.id, 0);
      c.diagnostic(`no VNC: ${r.durationMs} ms; ${summary(r)}`);
      assertTop(r, 'DOC_VNC_REFUSED');
    } finally {
      await t.manager.destroy(g.vm.id);
      await settle(g.ready);
    }
  });

  test('wrong root= → DOC_BOOTARGS_ROOT', async (c) => {
    overrides.set('wrong-root', appendBootArgs('root=/dev/vdb'));
    const g = await boot('wrong-root');
    try {
      await assert.rejects(g.ready, 'the boot fails');
      const r = await doctor(g.vm.id);
      c.diagnostic(`wrong root: ${r.durationMs} ms; ${summary(r)}`);
      assertTop(r, 'DOC_BOOTARGS_ROOT');
      assert.ok(r.findings.some((f) => f.code === 'CON_ROOT_DEVICE_MISSING' && f.causedBy?.includes('DOC_BOOTARGS_ROOT')), 'the console confirms it');
    } finally {
      await t.manager.destroy(g.vm.id);
    }
  });

  test('the opposite case: a healthy VM whose console shows the virtio-mmio DMA warning is not blamed on it', async (c) => {
    variants.push(await rootfsVariant(base, tmp, 'desktop-dma-warning', [DMA_WARNING_HOOK]));
    const g = await boot('dma-warning', 'desktop-dma-warning');
    try {
      const vm = await g.ready;
      c.diagnostic(await waitConsole(consoleOf(vm), /Failed to enable 64-bit or 32-bit DMA/, 10_000));
      const r = await doctor(vm.id);
      c.diagnostic(`DMA warning: ${r.durationMs} ms; ${summary(r)}`);
      assertHealthy(r, 'a healthy VM with the DMA warning');
      const dma = r.findings.find((f) => f.code === 'CON_VIRTIO_DMA_WARNING');
      assert.equal(dma?.severity, 'info');
      assert.match(dma!.message, /harmless/);
      assert.ok(!r.findings.some((f) => f.severity !== 'info' && /SWIOTLB/i.test(f.message)), 'nothing blames SWIOTLB');
    } finally {
      await t.manager.destroy(g.vm.id);
    }
  });

  describe('kernel faults (variants of the image kernel)', { concurrency: false }, () => {
    let kernels: VariantResult;
    before(async () => {
      const t0 = Date.now();
      kernels = await buildKernelVariants(base, MATRIX_KERNEL_VARIANTS);
      if (kernels.ok) {
        for (const k of kernels.variants) variants.push(await makeVariantImage(base, tmp, `desktop-kernel-${k.name}`, { vmlinux: k.vmlinux }));
        process.stderr.write(`# kernel variants ready in ${Date.now() - t0} ms (${kernels.variants.map((k) => `${k.name}: ${k.cached ? 'cached' : `built in ${k.buildMs} ms`}`).join(', ')}; tree copy ${kernels.copyMs} ms)\n`);
      }
    });

    test('a kernel without virtio-net → KL_VIRTIO_NET_MISSING', async (c) => {
      if (!kernels.ok) return c.skip(kernels.skip);
      const g = await boot('no-virtio-net', 'desktop-kernel-no-virtio-net');
      try {
        // The guest comes up without a NIC (the init reports "eth0 none"); ask the doctor while the VM still boots.
        c.diagnostic(await waitConsole(consoleOf(g.vm), /HANGAR-NET eth0/));
        const r = await doctor(g.vm.id);
        c.diagnostic(`no virtio-net: ${r.durationMs} ms; ${summary(r)}`);
        assertTop(r, 'KL_VIRTIO_NET_MISSING');
        assert.ok(r.findings.some((f) => f.code === 'CON_NO_NET_DEVICE' && f.causedBy?.includes('KL_VIRTIO_NET_MISSING')), 'the console shows the consequence');
      } finally {
        await t.manager.destroy(g.vm.id);
        await settle(g.ready);
      }
    });

    test('virtio drivers built as modules, no initrd → KL_VIRTIO_BLK_MODULE', async (c) => {
      if (!kernels.ok) return c.skip(kernels.skip);
      const g = await boot('virtio-modules', 'desktop-kernel-virtio-modules');
      try {
        await assert.rejects(g.ready, 'the boot fails');
        const r = await doctor(g.vm.id);
        c.diagnostic(`virtio as modules: ${r.durationMs} ms; ${summary(r)}`);
        assertTop(r, 'KL_VIRTIO_BLK_MODULE');
        assert.ok(r.findings.some((f) => f.code === 'CON_NO_BLOCK_DEVICE' && f.causedBy?.includes('KL_VIRTIO_BLK_MODULE')), 'the console shows the consequence');
      } finally {
        await t.manager.destroy(g.vm.id);
      }
    });
  });
});
