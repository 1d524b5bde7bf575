// `npm run bench -- lint`: how long the kernel lint takes. Parse + lint of the largest Debian config (median and p99
// over N runs), and reading a real kernel image (ELF vmlinux from the image pipeline, Debian bzImage) when present.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { table } from '../src/cli/command.js';
import { resolvePaths } from '../src/config.js';
import { parseConfig } from '../src/kernel/config.js';
import { readKernel } from '../src/kernel/image-reader.js';
import { lintConfig, lintImage } from '../src/kernel/lint.js';
import { run as exec } from '../src/util/exec.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { percentile, round } from './_stats.js';

export const summary = 'kernel lint: parse+lint of the largest Debian config, and kernel image reads';

const RUNS = 200;
const IMAGE_RUNS = 5;
const DEBIAN_DIR = '/usr/src/linux-config-6.1';


/** The largest Debian config by decompressed size, or null when linux-config-6.1 is absent. */
async function largestDebianConfig(): Promise<{ name: string; text: string } | null> {
  if (!existsSync(DEBIAN_DIR)) return null;
  let best: { name: string; text: string } | null = null;
  for (const f of readdirSync(DEBIAN_DIR).filter((n) => n.startsWith('config.') && n.endsWith('.xz'))) {
    const text = (await exec('xz', ['-dc', join(DEBIAN_DIR, f)], { maxBuffer: 64 * 1024 * 1024 })).stdout;
    if (!best || text.length > best.text.length) best = { name: f, text };
  }
  return best;
}

function newestFile(paths: string[]): string | null {
  const existing = paths.filter((p) => existsSync(p)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return existing[0] ?? null;
}

function imageCandidates(): { label: string; path: string | null }[] {
  const imagesDir = resolvePaths().imagesDir;
  const vmlinux = process.env.HANGAR_TEST_VMLINUX
    ?? newestFile(existsSync(imagesDir) ? readdirSync(imagesDir).map((d) => join(imagesDir, d, 'vmlinux')) : []);
  const bzimage = process.env.HANGAR_TEST_BZIMAGE
    ?? newestFile(existsSync('/boot') ? readdirSync('/boot').filter((f) => f.startsWith('vmlinuz-')).map((f) => join('/boot', f)) : []);
  return [{ label: 'vmlinux', path: vmlinux }, { label: 'bzimage', path: bzimage }];
}

export async function run({ json }: BenchOptions): Promise<BenchFigures> {
  const figures: BenchFigures = {};
  const rows: (string | number)[][] = [];

  const cfg = await largestDebianConfig();
  if (cfg) {
    const times: number[] = [];
    for (let i = 0; i < RUNS + 10; i++) {
      const t0 = performance.now();
      lintConfig(parseConfig(cfg.text), { vmm: 'firecracker' });
      const dt = performance.now() - t0;
      if (i >= 10) times.push(dt); // the first runs warm the JIT up
    }
    times.sort((a, b) => a - b);
    Object.assign(figures, {
      config: cfg.name,
      config_lines: cfg.text.split('\n').length,
      runs: RUNS,
      parse_lint_median_ms: round(percentile(times, 50)),
      parse_lint_p99_ms: round(percentile(times, 99)),
      parse_lint_max_ms: round(times[times.length - 1]!),
    });
    rows.push([`parse+lint ${cfg.name} (${figures.config_lines} lines)`, RUNS, figures.parse_lint_median_ms as number, figures.parse_lint_p99_ms as number]);
  } else {
    figures.config = 'n/a: linux-config-6.1 not installed';
    rows.push(['parse+lint Debian config', 0, 'n/a', 'n/a']);
  }

  for (const { label, path } of imageCandidates()) {
    if (!path) {
      figures[`${label}_read_ms`] = 'n/a';
      rows.push([`read+lint ${label}`, 0, 'n/a', 'n/a']);
      continue;
    }
    const times: number[] = [];
    let compression: string | null = null;
    for (let i = 0; i < IMAGE_RUNS; i++) {
      const t0 = performance.now();
      const image = await readKernel(path);
      lintImage(image, { vmm: 'firecracker' });
      times.push(performance.now() - t0);
      compression = image.compression;
    }
    times.sort((a, b) => a - b);
    Object.assign(figures, {
      [`${label}_path`]: path,
      [`${label}_bytes`]: statSync(path).size,
      [`${label}_read_ms`]: round(percentile(times, 50)),
      [`${label}_read_max_ms`]: round(times[times.length - 1]!),
      ...(compression ? { [`${label}_compression`]: compression } : {}),
    });
    rows.push([`read+lint ${label} ${path}${compression ? ` (${compression})` : ''}`, IMAGE_RUNS, figures[`${label}_read_ms`] as number, figures[`${label}_read_max_ms`] as number]);
  }

  if (!json) process.stdout.write(table(['WHAT', 'RUNS', 'MEDIAN MS', 'P99/MAX MS'], rows));
  return figures;
}
