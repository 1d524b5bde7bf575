// `npm run bench -- e2b`: with the REAL e2b SDK against a real controller, Sandbox.create → the first
// commands.run('true') returning, p50 over HANGAR_BENCH_RUNS (default 3) runs of each template: "desktop" (a cold
// boot) and a golden snapshot of it (a clone restored). A warm pool would be a third: the E2B layer's `claim` hook
// (src/e2b/rest.ts, E2bOptions.claim) is where a pool's ready VM is taken instead of booting; this bench reports
// pool=false until one is wired there. Real QEMU (TCG here) in namespaces the live controller makes and removes (root).
import { Sandbox } from 'e2b';
import { table } from '../src/cli/command.js';
import { listImages } from '../src/image/store.js';
import { startLiveController, type LiveController } from '../test/support/live-controller.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { median, percentile, round } from './_stats.js';

export const summary = 'E2B SDK: Sandbox.create → first commands.run, p50, cold boot vs snapshot clone (vs a warm pool once wired)';

const RUNS = Number(process.env.HANGAR_BENCH_RUNS ?? 3);

interface Sample { createMs: number; firstRunMs: number; totalMs: number }

async function once(template: string, opts: { apiKey: string; apiUrl: string; sandboxUrl: string }): Promise<Sample> {
  const t0 = performance.now();
  const sbx = await Sandbox.create(template, { ...opts, requestTimeoutMs: 300_000, timeoutMs: 600_000 });
  const t1 = performance.now();
  const r = await sbx.commands.run('true');
  const t2 = performance.now();
  if (r.exitCode !== 0) throw new Error(`commands.run('true') exited ${r.exitCode}`);
  await sbx.kill();
  return { createMs: t1 - t0, firstRunMs: t2 - t1, totalMs: t2 - t0 };
}

export async function run({ json }: BenchOptions): Promise<BenchFigures> {
  const figures: BenchFigures = { runs: RUNS, pool: false };
  if (!(await listImages()).some((i) => i.profile === 'desktop')) {
    process.stderr.write('no desktop image: hangar image build --profile desktop\n');
    return { ...figures, desktop_image: false };
  }
  let live: LiveController | undefined;
  try {
    live = await startLiveController({ net: { cidr: '10.228.0.0/29' }, config: { hibernateAfterS: 0 } });
    const opts = { apiKey: live.c.token, apiUrl: `${live.c.url}/e2b`, sandboxUrl: `${live.c.url}/e2b/sandbox` };
    const snap = await live.c.manager.snapshots.create({ image: 'desktop' });
    const kinds: [string, string][] = [['cold boot', 'desktop'], ['snapshot clone', snap.manifest.id]];
    const rows: (string | number)[][] = [];
    for (const [kind, template] of kinds) {
      const samples: Sample[] = [];
      for (let i = 0; i < RUNS; i++) samples.push(await once(template, opts));
      const total = samples.map((s) => s.totalMs);
      const key = kind === 'cold boot' ? 'cold' : 'clone';
      Object.assign(figures, {
        [`${key}_create_to_first_run_ms_p50`]: Math.round(median(total)),
        [`${key}_create_to_first_run_ms_max`]: Math.round(percentile(total, 100)),
        [`${key}_create_ms_p50`]: Math.round(median(samples.map((s) => s.createMs))),
        [`${key}_first_run_ms_p50`]: round(median(samples.map((s) => s.firstRunMs)), 1),
      });
      rows.push([kind, Math.round(median(total)), Math.round(median(samples.map((s) => s.createMs))), round(median(samples.map((s) => s.firstRunMs)), 1), total.map(Math.round).join(' ')]);
    }
    rows.push(['warm pool', '-', '-', '-', 'not wired (E2bOptions.claim)']);
    await live.c.manager.snapshots.remove(snap.manifest.id);
    if (!json) {
      process.stdout.write(`Sandbox.create → first commands.run('true') returns (e2b SDK ${RUNS} runs each; TCG when /dev/kvm is unusable)\n`);
      process.stdout.write(table(['template', 'p50 ms', 'create p50 ms', 'first run p50 ms', 'runs (ms)'], rows) + '\n');
    }
    return figures;
  } finally {
    await live?.destroy();
  }
}
