// How fast `hangar doctor` answers: on a healthy host and VM (median of 5 runs), and per fault, the time from
// running the doctor to it naming the fault as the most likely cause. Real boots under TCG on a private test
// network (namespaces this bench creates and removes); faults injected as in test/doctor/faults.int.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { table } from '../src/cli/command.js';
import { runDoctor } from '../src/doctor/doctor.js';
import type { DoctorReport } from '../src/doctor/model.js';
import { resolveImage, type ImageInfo } from '../src/image/store.js';
import type { VmNetPlan } from '../src/net/plan.js';
import type { VmRecord } from '../src/store/store.js';
import { normalizeCreate } from '../src/vm/input.js';
import { createTestController, imageSkipReason } from '../test/support/controller.js';
import {
  appendBootArgs, bridgeWithoutGateway, forgetNeighbour, forwardDropWithBrNetfilter, NO_VNC_HOOK, READDRESS_HOOK, rootfsVariant, specOverrides,
  tapDown, tapNoMaster, variantSource, waitConsole, withMac, type Undo,
} from '../test/support/faults.js';
import { buildKernelVariants, makeVariantImage, MATRIX_KERNEL_VARIANTS, variantCacheDir } from '../test/support/kernel-variants.js';
import { resolvePaths } from '../src/config.js';
import { run as exec } from '../src/util/exec.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { median } from './_stats.js';

export const summary = 'doctor: ms on a healthy host+VM (median of 5), ms to name each injected fault';


interface Row { fault: string; expected: string; top: string; ms: number | null; ok: boolean }

export async function run(opts: BenchOptions): Promise<BenchFigures> {
  const skip = process.getuid?.() !== 0 ? 'needs root' : await imageSkipReason();
  if (skip) {
    if (!opts.json) process.stdout.write(`skipped: ${skip}\n`);
    return { skipped: skip };
  }
  const base = await resolveImage('desktop');
  const tmp = mkdtempSync(join(tmpdir(), 'hangar-bench-doctor-'));
  const variants: ImageInfo[] = [];
  const overrides = specOverrides();
  const t = await createTestController({ manager: { images: variantSource(() => variants), specOverride: overrides.specOverride } });
  const ns = t.net.vmNetns!;
  const rows: Row[] = [];
  const doctor = (id: string, bootGraceMs?: number): Promise<DoctorReport> => runDoctor({ manager: t.manager }, { vm: id, ...(bootGraceMs !== undefined ? { bootGraceMs } : {}) });
  const record = (fault: string, expected: string, r: DoctorReport | null): void => {
    rows.push({ fault, expected, top: r?.mostLikelyCause?.code ?? r?.findings[0]?.code ?? '-', ms: r?.durationMs ?? null, ok: r?.mostLikelyCause?.code === expected });
  };
  const plan = (vm: VmRecord): VmNetPlan => vm.net as unknown as VmNetPlan;
  const boot = async (name: string, image?: string): Promise<{ vm: VmRecord; ready: Promise<VmRecord> }> => {
    const c = await t.manager.create(normalizeCreate({ name, ...(image ? { image } : {}) }));
    c.ready.catch(() => undefined);
    return c;
  };
  let healthyMs: number[] = [];
  try {
    const healthy = await (await boot('healthy')).ready;
    for (let i = 0; i < 5; i++) healthyMs.push((await doctor(healthy.id)).durationMs);

    const netFault = async (fault: string, expected: string, inject: () => Promise<Undo>): Promise<void> => {
      const undo = await inject();
      try { record(fault, expected, await doctor(healthy.id)); } finally { await undo(); }
    };
    await netFault('TAP left down', 'DOC_TAP_DOWN', () => tapDown(ns, plan(healthy).tap));
    await netFault('TAP not on the bridge', 'DOC_TAP_NOT_ON_BRIDGE', () => tapNoMaster(ns, plan(healthy).tap, t.net.cfg.bridge));
    await netFault('bridge without gateway', 'DOC_BRIDGE_NO_GATEWAY', () => bridgeWithoutGateway(ns, t.net.cfg.bridge, `${t.net.cfg.gateway}/${t.net.cfg.prefix}`));
    await netFault('FORWARD DROP + br_netfilter', 'DOC_FORWARD_DROP', async () => (await forwardDropWithBrNetfilter(ns)).undo);

    overrides.set('dup-mac', withMac(plan(healthy).mac));
    const dup = await boot('dup-mac');
    try {
      await waitConsole(t.manager.consolePath(dup.vm.id), /HANGAR-NET eth0 \d/);
      record('second VM with the same MAC', 'DOC_DUPLICATE_MAC', await doctor(healthy.id));
    } finally {
      await t.manager.destroy(dup.vm.id);
      await forgetNeighbour(ns, plan(dup.vm).ip, t.net.cfg.bridge);
    }

    overrides.set('wrong-root', appendBootArgs('root=/dev/vdb'));
    const wr = await boot('wrong-root');
    await wr.ready.catch(() => undefined);
    record('wrong root=', 'DOC_BOOTARGS_ROOT', await doctor(wr.vm.id));
    await t.manager.destroy(wr.vm.id);

    variants.push(await rootfsVariant(base, tmp, 'desktop-fault-no-vnc', [NO_VNC_HOOK]), await rootfsVariant(base, tmp, 'desktop-fault-readdress', [READDRESS_HOOK]));
    const nv = await boot('no-vnc', 'desktop-fault-no-vnc');
    try {
      await waitConsole(t.manager.consolePath(nv.vm.id), /test-fault: x11vnc pid \d+ killed/);
      record('VNC server not running', 'DOC_VNC_REFUSED', await doctor(nv.vm.id, 0));
    } finally {
      await t.manager.destroy(nv.vm.id);
    }
    const ra = await boot('readdress', 'desktop-fault-readdress');
    try {
      const vm = await ra.ready;
      await exec('ping', ['-c', '1', '-W', '2', plan(vm).ip], { netns: ns, allowFailure: true });
      await waitConsole(t.manager.consolePath(vm.id), /test-fault: eth0 re-addressed/, 60_000);
      record('guest re-addresses eth0', 'DOC_GUEST_READDRESSED', await doctor(vm.id));
    } finally {
      await t.manager.destroy(ra.vm.id);
    }

    const cached = await cachedKernelVariants(base);
    for (const k of cached) variants.push(await makeVariantImage(base, tmp, `desktop-kernel-${k.name}`, { vmlinux: k.vmlinux }));
    if (cached.some((k) => k.name === 'no-virtio-net')) {
      const g = await boot('no-virtio-net', 'desktop-kernel-no-virtio-net');
      try {
        await waitConsole(t.manager.consolePath(g.vm.id), /HANGAR-NET eth0/);
        record('kernel without virtio-net', 'KL_VIRTIO_NET_MISSING', await doctor(g.vm.id));
      } finally {
        await t.manager.destroy(g.vm.id);
      }
    } else {
      rows.push({ fault: 'kernel without virtio-net', expected: 'KL_VIRTIO_NET_MISSING', top: `skipped: not in ${variantCacheDir(resolvePaths())}`, ms: null, ok: false });
    }
    if (cached.some((k) => k.name === 'virtio-modules')) {
      const g = await boot('virtio-modules', 'desktop-kernel-virtio-modules');
      await g.ready.catch(() => undefined);
      record('virtio as modules, no initrd', 'KL_VIRTIO_BLK_MODULE', await doctor(g.vm.id));
      await t.manager.destroy(g.vm.id);
    }
  } finally {
    await t.destroy();
    rmSync(tmp, { recursive: true, force: true });
  }
  healthyMs = healthyMs.length ? healthyMs : [NaN];
  if (!opts.json) {
    process.stdout.write(`healthy host + VM: median ${median(healthyMs)} ms of ${healthyMs.length} runs (${healthyMs.join(', ')} ms)\n`);
    process.stdout.write(table(['FAULT', 'EXPECTED', 'TOP FINDING', 'MS TO DIAGNOSIS', 'OK'], rows.map((r) => [r.fault, r.expected, r.top, r.ms ?? '-', r.ok ? 'yes' : 'NO'])));
  }
  const figures: BenchFigures = { healthyMedianMs: median(healthyMs), healthyMaxMs: Math.max(...healthyMs), faultsNamed: rows.filter((r) => r.ok).length, faults: rows.length };
  for (const r of rows) figures[`ms_${r.expected}`] = r.ms;
  return figures;
}

/** The matrix's kernel variants that are already built (never builds: a cold build takes many minutes). */
async function cachedKernelVariants(base: ImageInfo): Promise<{ name: string; vmlinux: string }[]> {
  const out: { name: string; vmlinux: string }[] = [];
  for (const spec of MATRIX_KERNEL_VARIANTS) {
    const r = await buildKernelVariants(base, [spec], { cachedOnly: true });
    if (r.ok) out.push(...r.variants.map((v) => ({ name: v.name, vmlinux: v.vmlinux })));
  }
  return out;
}
