// `npm run bench -- snapshot`: restore→ready of a clone of a golden snapshot against cold boot→ready, per profile
// (median of 5 each, interleaved), where the restore time goes, and the memory (PSS and RSS of the VMM processes)
// of 5 running clones against 5 cold-booted VMs. Real QEMU under TCG in namespaces it creates and removes (root).
// The image used is a copy with the resume agent installed (test/snapshot/guest-image.ts), as images built once
// the pipeline ships the agent will be; without it a restore is the same minus the clock/entropy sync.
import { table } from '../src/cli/command.js';
import { listImages } from '../src/image/store.js';
import type { Progress } from '../src/util/progress.js';
import { normalizeCreate } from '../src/vm/input.js';
import { QemuDriver } from '../src/vmm/qemu/driver.js';
import { createTestController, type TestController } from '../test/support/controller.js';
import { makeTestGuestImage, type TestGuestImage } from '../test/snapshot/guest-image.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { memoryKiB, timed } from './_vm.js';
import { median, round } from './_stats.js';

export const summary = 'Snapshots: clone restore→ready vs cold boot→ready per profile; memory of 5 clones vs 5 cold VMs';

const RUNS = Number(process.env.HANGAR_BENCH_RUNS ?? 5);
const FLEET = Number(process.env.HANGAR_BENCH_FLEET ?? 5);
const PROFILES = ['desktop', 'browser'] as const;

/** Step timings of boots, by step name without the VM id ("disk", "clone network …", "restore qemu …"). */
function recorder(): Progress & { take(): Record<string, number> } {
  let steps: Record<string, number> = {};
  return {
    phase() {}, info() {}, fail() {},
    done(name, ms) {
      const k = name.replace(/^vm-[0-9a-f]+: /, '').replace(/ (hgtap\d+|[\w.-]+-c\d+)$/, '').replace(/ from .*$/, '');
      steps[k] = (steps[k] ?? 0) + ms;
    },
    take() { const s = steps; steps = {}; return s; },
  };
}



/** N VMs up at once (created one after another: the host has 2 cores), their VMM memory, then destroyed. */
async function fleetMemory(t: TestController, req: Parameters<TestController['manager']['create']>[0]): Promise<{ pss: number; rss: number }> {
  const up = [];
  try {
    for (let i = 0; i < FLEET; i++) up.push(await (await t.manager.create(req)).ready);
    await new Promise((r) => setTimeout(r, 3000)); // let the guests settle after boot/restore
    const mem = await Promise.all(up.map((v) => memoryKiB(v.pid!)));
    return { pss: mem.reduce((a, m) => a + m.pss, 0), rss: mem.reduce((a, m) => a + m.rss, 0) };
  } finally {
    for (const v of up) await t.manager.destroy(v.id);
  }
}

export async function run({ json }: BenchOptions): Promise<BenchFigures> {
  const figures: BenchFigures = { runs: RUNS, fleet: FLEET };
  const rows: (string | number)[][] = [];
  const stepRows: (string | number)[][] = [];
  const have = new Set((await listImages()).map((i) => i.profile));
  for (const profile of PROFILES) {
    if (!have.has(profile)) {
      rows.push([profile, `no ${profile} image (hangar image build --profile ${profile})`, '-', '-', '-']);
      figures[`${profile}_image`] = false;
      continue;
    }
    figures[`${profile}_image`] = true;
    let img: TestGuestImage | undefined;
    let t: TestController | undefined;
    const progress = recorder();
    try {
      img = await makeTestGuestImage(profile);
      t = await createTestController({ net: { cidr: '10.221.0.0/24' }, manager: { images: img.source, progress, drivers: { qemu: new QemuDriver({ guestAgent: true }) } } });
      const snap = await t.manager.snapshots.create({ image: profile });
      progress.take();
      const m = snap.manifest;
      const cold: number[] = [];
      const restore: number[] = [];
      const coldSteps: Record<string, number>[] = [];
      const restoreSteps: Record<string, number>[] = [];
      for (let i = 0; i < RUNS; i++) {
        cold.push(await timed(t, normalizeCreate({ profile })));
        coldSteps.push(progress.take());
        restore.push(await timed(t, normalizeCreate({ profile, fromSnapshot: m.id })));
        restoreSteps.push(progress.take());
      }
      const c = median(cold);
      const r = median(restore);
      rows.push([profile, Math.round(c), Math.round(r), round(c / r, 1), `${cold.map(Math.round).join(' ')} | ${restore.map(Math.round).join(' ')}`]);
      Object.assign(figures, {
        [`${profile}_cold_ready_ms_median`]: Math.round(c),
        [`${profile}_restore_ready_ms_median`]: Math.round(r),
        [`${profile}_speedup`]: round(c / r, 2),
        [`${profile}_snapshot_state_mib`]: round(m.files['state.bin']!.size / 2 ** 20, 1),
        [`${profile}_snapshot_take_ms`]: m.durationsMs.total,
        [`${profile}_snapshot_paused_ms`]: m.durationsMs.state + m.durationsMs.disk,
      });
      for (const [kind, all] of [['cold', coldSteps], ['restore', restoreSteps]] as const) {
        for (const step of Object.keys(all[0] ?? {})) {
          stepRows.push([profile, kind, step, Math.round(median(all.map((s) => s[step] ?? 0)))]);
        }
      }
      if (profile === 'desktop') {
        const clones = await fleetMemory(t, normalizeCreate({ fromSnapshot: m.id }));
        const boots = await fleetMemory(t, normalizeCreate({ profile }));
        Object.assign(figures, {
          clones_pss_mib: round(clones.pss / 1024, 0), clones_rss_mib: round(clones.rss / 1024, 0),
          cold_pss_mib: round(boots.pss / 1024, 0), cold_rss_mib: round(boots.rss / 1024, 0),
        });
      }
      await t.manager.snapshots.remove(m.id);
    } finally {
      await t?.destroy();
      img?.remove();
    }
  }
  if (!json) {
    process.stdout.write(table(['profile', 'cold boot→ready ms (median)', 'restore→ready ms (median)', 'speedup', `runs (cold | restore)`], rows));
    if (stepRows.length) process.stdout.write('\n' + table(['profile', 'path', 'step', 'ms (median)'], stepRows));
    if (figures.clones_pss_mib !== undefined) {
      process.stdout.write('\n' + table([`${FLEET} VMs running (desktop)`, 'PSS MiB (sum)', 'RSS MiB (sum)'], [
        ['clones of one snapshot', String(figures.clones_pss_mib), String(figures.clones_rss_mib)],
        ['cold-booted', String(figures.cold_pss_mib), String(figures.cold_rss_mib)],
      ]));
    }
    process.stdout.write('\n' + table(['figure', 'value'], Object.entries(figures).map(([k, v]) => [k, String(v)])));
  }
  return figures;
}
