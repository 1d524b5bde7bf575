// `npm run bench -- NAME [--json]`: runs bench/NAME.ts. Each bench module exports `run({ json })`, prints its own
// table (human mode) and returns one flat object of its figures, printed as JSON with --json.
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BenchOptions {
  json: boolean;
}
export type BenchFigures = Record<string, number | string | boolean | null>;
export type BenchModule = { run: (opts: BenchOptions) => Promise<BenchFigures>; summary?: string };

const here = dirname(fileURLToPath(import.meta.url));
const available = (): string[] =>
  readdirSync(here).filter((f) => f.endsWith('.js') && f !== 'index.js' && !f.startsWith('_')).map((f) => f.slice(0, -3)).sort();

async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  const name = argv.find((a) => !a.startsWith('-'));
  if (!name || !available().includes(name)) {
    process.stderr.write(`usage: npm run bench -- NAME [--json]\navailable: ${available().join(', ')}\n`);
    return 2;
  }
  const mod = (await import(`./${name}.js`)) as BenchModule;
  const figures = await mod.run({ json });
  if (json) process.stdout.write(JSON.stringify(figures) + '\n');
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then((c) => { process.exitCode = c; }, (e: unknown) => { console.error(e); process.exitCode = 1; });
}
