// How fast the console classifier names a cause: per real fixture (median of repeated runs) and on a large log
// (the real reboot-loop capture repeated to ~8 MiB, the size of a guest left looping for hours).
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { table } from '../src/cli/command.js';
import { classifyConsole } from '../src/doctor/console.js';
import type { BenchFigures, BenchOptions } from './index.js';

export const summary = 'console classifier: ms per real console log, MiB/s on a large reboot-loop log';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'console');

function medianMs(fn: () => void, runs: number): number {
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const s = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  return t.sort((a, b) => a - b)[Math.floor(t.length / 2)]!;
}

export async function run(opts: BenchOptions): Promise<BenchFigures> {
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.log') && !f.startsWith('synth-')).sort();
  const rows: (string | number)[][] = [];
  let worst = 0;
  for (const f of files) {
    const text = readFileSync(join(FIXTURES, f), 'utf8');
    const ms = medianMs(() => classifyConsole(text), 30);
    worst = Math.max(worst, ms);
    rows.push([f, text.length, classifyConsole(text).findings[0]?.code ?? '-', ms.toFixed(2)]);
  }
  const loop = readFileSync(join(FIXTURES, 'reboot-loop.log'), 'utf8');
  const big = loop.repeat(Math.ceil((8 * 1024 * 1024) / loop.length));
  const bigMs = medianMs(() => classifyConsole(big), 3);
  const mibPerS = big.length / 1024 / 1024 / (bigMs / 1000);
  if (!opts.json) {
    process.stdout.write(table(['FIXTURE', 'BYTES', 'TOP FINDING', 'MS (median)'], rows));
    process.stdout.write(`large log: ${(big.length / 1024 / 1024).toFixed(1)} MiB in ${bigMs.toFixed(0)} ms (${mibPerS.toFixed(1)} MiB/s)\n`);
  }
  return { fixtures: files.length, worstFixtureMs: Number(worst.toFixed(2)), largeLogMiB: Number((big.length / 1024 / 1024).toFixed(1)), largeLogMs: Math.round(bigMs), largeLogMiBPerS: Number(mibPerS.toFixed(1)) };
}
