// Static files of the viewer: the noVNC client from node_modules/@novnc/novnc and Hangar's own page script and
// style. Files are read once into an in-memory table keyed by their exact public path, so a request can only
// ever get one of the listed files: there is no path joining at request time and thus no traversal.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const STATIC_PREFIX = '/static/';
export const NOVNC_PREFIX = `${STATIC_PREFIX}novnc/`;
export const HANGAR_PREFIX = `${STATIC_PREFIX}hangar/`;
/** xterm.js and its fit addon, for the terminal page (from node_modules, never a CDN). */
export const XTERM_PREFIX = `${STATIC_PREFIX}xterm/`;

export const MIME: Readonly<Record<string, string>> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

export interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

const here = dirname(fileURLToPath(import.meta.url));
/** src/desktop/assets: data, not compiled; from dist/src/desktop it is three levels up. */
export const VIEWER_ASSETS_DIR = existsSync(join(here, 'assets')) ? join(here, 'assets') : resolve(here, '../../../src/desktop/assets');

/** The installed @novnc/novnc package directory (its `exports` points at core/rfb.js). */
export function novncDir(): string {
  return resolve(dirname(createRequire(import.meta.url).resolve('@novnc/novnc')), '..');
}

/** The installed package directory of `name` (resolved through its package.json). */
function packageDir(name: string): string {
  return dirname(createRequire(import.meta.url).resolve(`${name}/package.json`));
}

/** The xterm files served: public name → file in node_modules. */
export function xtermFiles(): Record<string, string> {
  const x = packageDir('@xterm/xterm');
  const fit = packageDir('@xterm/addon-fit');
  return { 'xterm.mjs': join(x, 'lib/xterm.mjs'), 'xterm.css': join(x, 'css/xterm.css'), 'addon-fit.mjs': join(fit, 'lib/addon-fit.mjs') };
}

/** Regular files under `dir` with a served extension; symlinks are skipped so nothing outside can be reached. */
function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const st = lstatSync(join(dir, r));
    if (st.isDirectory()) out.push(...walk(dir, r));
    else if (st.isFile() && MIME[extname(name)]) out.push(r);
  }
  return out;
}

function load(table: Map<string, StaticFile>, prefix: string, dir: string, subdirs: readonly string[] | null): void {
  const files = subdirs ? subdirs.flatMap((d) => (existsSync(join(dir, d)) ? walk(dir, d) : [])) : walk(dir);
  for (const rel of files) {
    const body = readFileSync(join(dir, rel));
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    table.set(`${prefix}${rel}`, { body, type: MIME[extname(rel)]!, etag });
  }
}

/** Public path → file, for noVNC's `core/` and `vendor/` and Hangar's viewer assets. */
export function loadStaticTable(opts: { novnc?: string; assets?: string } = {}): Map<string, StaticFile> {
  const table = new Map<string, StaticFile>();
  load(table, NOVNC_PREFIX, opts.novnc ?? novncDir(), ['core', 'vendor']);
  load(table, HANGAR_PREFIX, opts.assets ?? VIEWER_ASSETS_DIR, null);
  for (const [name, path] of Object.entries(xtermFiles())) {
    const body = readFileSync(path);
    table.set(`${XTERM_PREFIX}${name}`, { body, type: MIME[extname(name)]!, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  return table;
}
