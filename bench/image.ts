// `npm run bench -- image`: the image pipeline's numbers.
//  - cold build of kernel and rootfs: from the manifest of the build that made the cached image, or, with
//    HANGAR_BENCH_COLD=1, measured now by building into a temporary cache directory (~7 min on 2 cores);
//  - cached rebuild (unchanged inputs, a no-op);
//  - boot to VNC-ready under TCG, median of 5: QEMU -M microvm inside a network namespace this bench creates and
//    removes, READY marker on the serial console, then the RFB banner read from inside the namespace.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolvePaths } from '../src/config.js';
import { READY_MARKER, VNC_PORT } from '../src/guest-protocol.js';
import { buildImage } from '../src/image/build.js';
import { BASE_CMDLINE } from '../src/image/plan.js';
import type { ImageInfo } from '../src/image/store.js';
import { run as runCmd } from '../src/util/exec.js';
import { createProgress, progressModeFromEnv } from '../src/util/progress.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { median } from './_stats.js';

export const summary = 'image pipeline: cold build (kernel, rootfs), cached rebuild, boot to VNC-ready under TCG';

const sum = (o: Record<string, number>): number => Object.values(o).reduce((a, b) => a + b, 0);
const s = (ms: number): number => Math.round(ms / 10) / 100;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const NET = { gw: '172.30.98.1', guest: '172.30.98.2', mask: '255.255.255.0', prefix: 24 };

/** Reads the RFB banner from inside the namespace (a node one-liner run there; no shell). */
async function rfbBanner(ns: string): Promise<string> {
  const js = `const s=require('net').connect(${VNC_PORT},'${NET.guest}');s.setTimeout(5000,()=>process.exit(2));s.once('data',(d)=>{process.stdout.write(d.subarray(0,12));s.destroy();})`;
  const r = await runCmd(process.execPath, ['-e', js], { netns: ns, allowFailure: true, timeoutMs: 10_000 });
  return r.stdout.trim();
}

/** One boot: QEMU TCG in NS; ms from start to the READY marker and to a readable RFB banner. */
async function bootOnce(img: ImageInfo, ns: string, tap: string, extra: string[]): Promise<{ readyMs: number; rfbMs: number; banner: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-bench-boot-'));
  const log = join(dir, 'console.log');
  const pidFile = join(dir, 'qemu.pid');
  const t0 = performance.now();
  try {
    await runCmd('qemu-system-x86_64', [
      '-M', 'microvm,acpi=off,x-option-roms=off,rtc=on', '-m', '512', '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none',
      '-serial', `file:${log}`, '-kernel', img.kernelPath,
      '-append', `${BASE_CMDLINE} ip=${NET.guest}::${NET.gw}:${NET.mask}::eth0:off`,
      // snapshot=on: the guest writes to a throwaway overlay, never to the golden image
      '-drive', `id=root,file=${img.rootfsPath},format=raw,if=none,snapshot=on`, '-device', 'virtio-blk-device,drive=root',
      '-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`, '-device', 'virtio-net-device,netdev=n0,mac=52:54:00:00:98:02',
      ...extra, '-pidfile', pidFile, '-daemonize',
    ], { netns: ns, timeoutMs: 30_000 });
    let readyMs = -1;
    while (performance.now() - t0 < 120_000) {
      const text = await readFile(log, 'utf8').catch(() => '');
      if (text.includes(READY_MARKER)) { readyMs = performance.now() - t0; break; }
      if (/Kernel panic/.test(text)) throw new Error(`guest panicked: ${text.slice(-2000)}`);
      await sleep(50);
    }
    if (readyMs < 0) throw new Error(`no ${READY_MARKER} within 120 s`);
    const banner = await rfbBanner(ns);
    return { readyMs, rfbMs: performance.now() - t0, banner };
  } finally {
    const pid = Number(await readFile(pidFile, 'utf8').catch(() => ''));
    if (pid > 0) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      await sleep(200);
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/** N boots inside a namespace made for them (bridge with the gateway address, one TAP), removed afterwards. */
async function bootTimes(img: ImageInfo, n: number, extra: string[]): Promise<{ ready: number[]; rfb: number[]; banner: string }> {
  const ns = `hgbench-img-${process.pid}`;
  const ip = (...a: string[]): Promise<unknown> => runCmd('ip', a);
  await ip('netns', 'add', ns);
  try {
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    await ip('-n', ns, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', ns, 'addr', 'add', `${NET.gw}/${NET.prefix}`, 'dev', 'br0');
    await ip('-n', ns, 'link', 'set', 'br0', 'up');
    await runCmd('ip', ['tuntap', 'add', 'dev', 'tap0', 'mode', 'tap'], { netns: ns });
    await ip('-n', ns, 'link', 'set', 'tap0', 'master', 'br0');
    await ip('-n', ns, 'link', 'set', 'tap0', 'up');
    const ready: number[] = [];
    const rfb: number[] = [];
    let banner = '';
    for (let i = 0; i < n; i++) {
      const r = await bootOnce(img, ns, 'tap0', extra);
      ready.push(r.readyMs);
      rfb.push(r.rfbMs);
      banner = r.banner;
    }
    return { ready, rfb, banner };
  } finally {
    await runCmd('ip', ['netns', 'del', ns], { allowFailure: true });
  }
}

export async function run(opts: BenchOptions): Promise<BenchFigures> {
  const progress = createProgress(opts.json ? 'quiet' : progressModeFromEnv());
  const cold = process.env.HANGAR_BENCH_COLD === '1';
  let coldDir: string | null = null;
  try {
    let paths = resolvePaths();
    if (cold) {
      coldDir = await mkdtemp(join(paths.cacheDir, 'bench-cold-'));
      paths = { ...paths, cacheDir: coldDir, imagesDir: join(coldDir, 'images') };
    }
    const t0 = performance.now();
    const img = await buildImage({ profile: 'desktop', paths, progress });
    const buildMs = performance.now() - t0;
    const t1 = performance.now();
    const again = await buildImage({ profile: 'desktop', paths });
    const cachedMs = performance.now() - t1;
    const k = img.manifest.durationsMs.kernel;
    const r = img.manifest.durationsMs.rootfs;
    const N = 5;
    const withRng = await bootTimes(img, N, ['-device', 'virtio-rng-device']);
    const noRng = await bootTimes(img, N, []);
    const figures: BenchFigures = {
      image: img.id,
      build_source: cold ? 'cold, measured now (temporary cache)' : 'manifest of the build that made the cached artifacts',
      kernel_build_incremental: img.manifest.kernel.incremental ?? null,
      kernel_build_s: s(sum(k)),
      kernel_compile_s: s(k['compile'] ?? 0),
      rootfs_build_s: s(sum(r)),
      rootfs_debootstrap_s: s(r['debootstrap'] ?? 0),
      this_build_s: s(buildMs),
      cached_rebuild_s: s(cachedMs),
      cached_rebuild_noop: again.cached,
      rootfs_mib: Math.round(img.sizes.rootfs / 2 ** 20),
      vmlinux_mib: Math.round(img.sizes.vmlinux / 2 ** 20),
      boot_ready_median_s: s(median(withRng.ready)),
      boot_rfb_median_s: s(median(withRng.rfb)),
      boot_ready_median_no_rng_s: s(median(noRng.ready)),
      boot_runs: N,
      rfb_banner: withRng.banner,
    };
    if (!opts.json) {
      for (const [key, v] of Object.entries(figures)) process.stdout.write(`${key.padEnd(28)} ${v}\n`);
      process.stdout.write(`boot ready (s, virtio-rng): ${withRng.ready.map((x) => s(x)).join(' ')}; without: ${noRng.ready.map((x) => s(x)).join(' ')}\n`);
    }
    return figures;
  } finally {
    if (coldDir) await rm(coldDir, { recursive: true, force: true });
  }
}
