// `npm run bench -- lifecycle`: create→ready through Hangar against the same QEMU command run directly (median of
// 5 each, in one run, same test network), the controller's memory per running VM, and leaks after 20
// create/destroy cycles. Runs in namespaces it creates and removes (root needed). Leaks are counted among what this
// bench made only (its state dir, its direct-boot dirs, its namespaces), so a controller beside it (the main job's
// `hangar` VMs) is not one.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { table } from '../src/cli/command.js';
import { GUEST_INIT_PATH, READY_MARKER, VNC_PORT } from '../src/guest-protocol.js';
import { resolveImage } from '../src/image/store.js';
import { buildBootArgs } from '../src/kernel/bootargs.js';
import { readBanner } from '../src/net/dial.js';
import { attachVm, listHangarTaps } from '../src/net/host.js';
import { run as exec, killGroup } from '../src/util/exec.js';
import { normalizeCreate } from '../src/vm/input.js';
import { waitForMarker } from '../src/vmm/console.js';
import { chooseAccel, qemuKvmCheck, type Accel } from '../src/vmm/accel.js';
import { buildQemuArgv } from '../src/vmm/qemu/argv.js';
import { createTestController, type TestController } from '../test/support/controller.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { median, ownedProcesses, round, type BenchOwnership, type ProcFact } from './_stats.js';

export const summary = 'VM lifecycle: Hangar create→ready vs the same QEMU command run directly; memory per VM; leaks over 20 cycles';

const RUNS = Number(process.env.HANGAR_BENCH_RUNS ?? 5);
const CYCLES = Number(process.env.HANGAR_BENCH_CYCLES ?? 20);
/** VMs up at once for the memory figure (fewer for a quick run on a small host). */
const MEM_VMS = Number(process.env.HANGAR_BENCH_MEM_VMS ?? 5);

/** The QEMU command Hangar would run, started by hand: disk and TAP prepared beforehand (untimed), like an operator would. */
async function directBoot(t: TestController, i: number, accel: Accel, dirs: string[]): Promise<number> {
  const image = await resolveImage('desktop');
  const dir = mkdtempSync(join(tmpdir(), 'hangar-direct-'));
  dirs.push(dir);
  const disk = join(dir, 'rootfs.ext4');
  await exec('cp', ['--sparse=always', image.rootfsPath, disk]);
  const tap = `hgdirect${i}`;
  const cfg = t.net.cfg;
  const ip = cfg.cidr.replace(/\.0\/\d+$/, `.${200 + i}`);
  const undoTap = await attachVm(cfg, { tap });
  const spec = {
    id: `direct-${i}`, kernelPath: image.kernelPath, rootfsPath: disk, vcpus: 1, memMiB: 512, runDir: dir,
    consoleLogPath: join(dir, 'console.log'), net: { tap, mac: `02:48:0a:00:00:${(200 + i).toString(16)}` },
    bootArgs: buildBootArgs({ vmm: 'qemu-microvm', init: GUEST_INIT_PATH, net: { guest: ip, gateway: cfg.gateway, netmask: cfg.netmask } }),
  };
  const argv = buildQemuArgv(spec, { accel, qmpSocket: join(dir, 'qmp.sock') });
  const t0 = performance.now();
  const child = spawn('ip', ['netns', 'exec', cfg.netns!, 'qemu-system-x86_64', ...argv], { detached: true, stdio: 'ignore' });
  try {
    await waitForMarker(spec.consoleLogPath, READY_MARKER, { timeoutMs: 180_000 });
    for (;;) {
      const banner = await readBanner(t.manager.vmDialer, ip, VNC_PORT, 3000).catch(() => '');
      if (banner.startsWith('RFB ')) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    return performance.now() - t0;
  } finally {
    killGroup(child.pid, 'SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await undoTap();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function hangarBoot(t: TestController): Promise<number> {
  const t0 = performance.now();
  const { vm, ready } = await t.manager.create(normalizeCreate({}));
  await ready;
  const ms = performance.now() - t0;
  await t.manager.destroy(vm.id);
  return ms;
}

/** Every process on the machine: argv, cwd, and which of `netns` it lives in. A thin reader of /proc and iproute2. */
export async function readProcesses(netns: readonly string[]): Promise<ProcFact[]> {
  const home = new Map<number, string>();
  for (const ns of netns) {
    const r = await exec('ip', ['netns', 'pids', ns], { allowFailure: true, timeoutMs: 10_000 });
    for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) home.set(pid, ns);
  }
  const out: ProcFact[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const pid = Number(d);
    const argv = await readFile(`/proc/${d}/cmdline`, 'utf8').then((c) => c.split('\0').filter(Boolean), () => null);
    if (argv === null) continue; // gone
    out.push({ pid, argv, cwd: await readlink(`/proc/${d}/cwd`).catch(() => null), netns: home.get(pid) ?? null });
  }
  return out;
}

/** Pids in pidfiles under dir (<dir>/*.pid, <dir>/vms/<id>/*.pid: where the drivers write them). */
export async function pidFilePids(dir: string): Promise<number[]> {
  const files: string[] = [];
  const pidsIn = async (d: string): Promise<void> => {
    for (const f of await readdir(d).catch(() => [] as string[])) if (f.endsWith('.pid')) files.push(join(d, f));
  };
  await pidsIn(dir);
  for (const vm of await readdir(join(dir, 'vms')).catch(() => [] as string[])) await pidsIn(join(dir, 'vms', vm));
  const pids = await Promise.all(files.map((f) => readFile(f, 'utf8').then((s) => Number(s.trim()), () => NaN)));
  return pids.filter((p) => Number.isInteger(p) && p > 0);
}

/** The bench's own processes still running now: the pure ownedProcesses over what the machine runs. */
export async function ownProcessesNow(own: Pick<BenchOwnership, 'dirs' | 'netns'>): Promise<ProcFact[]> {
  const pids = (await Promise.all(own.dirs.map(pidFilePids))).flat();
  return ownedProcesses(await readProcesses(own.netns), { ...own, pidFilePids: pids, exclude: [process.pid, process.ppid] });
}

async function leaks(t: TestController, directDirs: readonly string[]): Promise<Record<string, number>> {
  const netns = [t.net.hostNetns, ...(t.net.vmNetns ? [t.net.vmNetns] : [])];
  const procs = await ownProcessesNow({ dirs: [t.stateDir, ...directDirs], netns });
  return {
    rows: t.store.listVms().length,
    allocations: t.store.allocations().length,
    taps: (await listHangarTaps(t.net.cfg)).length,
    run_dirs: readdirSync(join(t.stateDir, 'vms')).length,
    vmm_processes: procs.length,
  };
}

export async function run({ json }: BenchOptions): Promise<BenchFigures> {
  const t = await createTestController({ net: { cidr: '10.217.0.0/24' } });
  try {
    const direct: number[] = [];
    const hangar: number[] = [];
    const directDirs: string[] = [];
    // The direct command uses what Hangar's QEMU driver would: the host's facts, with the same "does KVM work" check.
    const accel = (await chooseAccel({ kvmCheck: () => qemuKvmCheck('qemu-system-x86_64') })).accel;
    // Interleaved, so load from elsewhere hits both sides alike.
    for (let i = 0; i < RUNS; i++) {
      direct.push(await directBoot(t, i, accel, directDirs));
      hangar.push(await hangarBoot(t));
    }
    // Controller memory per running VM: what the controller holds for MEM_VMS running VMs (handles, watchers, timers),
    // as JS heap and RSS growth after full GCs; the VMs' own memory is the VMMs', not the controller's.
    const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
    const settle = async (): Promise<NodeJS.MemoryUsage> => {
      for (let i = 0; i < 3; i++) { gc(); await new Promise((r) => setTimeout(r, 50)); }
      return process.memoryUsage();
    };
    const m0 = await settle();
    const up = await Promise.all(Array.from({ length: MEM_VMS }, async () => (await t.manager.create(normalizeCreate({}))).ready));
    const m1 = await settle();
    const heapPerVm = Math.max(0, m1.heapUsed + m1.external - m0.heapUsed - m0.external) / up.length;
    const rssPerVm = Math.max(0, m1.rss - m0.rss) / up.length;
    for (const v of up) await t.manager.destroy(v.id);

    const t0 = performance.now();
    for (let i = 0; i < CYCLES; i++) await hangarBoot(t);
    const cyclesS = (performance.now() - t0) / 1000;
    const left = await leaks(t, directDirs);

    const dMed = median(direct);
    const hMed = median(hangar);
    const figures: BenchFigures = {
      accel,
      runs: RUNS,
      direct_ready_ms_median: round(dMed, 0),
      hangar_ready_ms_median: round(hMed, 0),
      hangar_over_direct_ratio: round(hMed / dMed),
      hangar_added_pct: round((hMed / dMed - 1) * 100, 1),
      target_added_pct: 10,
      controller_heap_per_vm_kib: round(heapPerVm / 1024, 0),
      controller_rss_per_vm_kib: round(rssPerVm / 1024, 0),
      memory_vms: MEM_VMS,
      cycles: CYCLES,
      cycles_s: round(cyclesS, 1),
      ...Object.fromEntries(Object.entries(left).map(([k, v]) => [`leaked_${k}`, v])),
      leaks_total: Object.values(left).reduce((a, b) => a + b, 0),
    };
    if (!json) {
      process.stdout.write(table(['create→ready (ms)', ...direct.map((_, i) => `#${i + 1}`), 'median'], [
        ['QEMU command, direct', ...direct.map((x) => Math.round(x)), Math.round(dMed)],
        ['Hangar (create API)', ...hangar.map((x) => Math.round(x)), Math.round(hMed)],
      ]));
      process.stdout.write('\n' + table(['figure', 'value'], Object.entries(figures).map(([k, v]) => [k, String(v)])));
    }
    return figures;
  } finally {
    await t.destroy();
  }
}
