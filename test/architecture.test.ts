// Architecture rules over src/, read from the source (a regex parser, enough for this code base's style):
// 1. no import cycles (static `import … from`, `import type`, `export … from`, side-effect imports; dynamic import()
//    is not a load-time edge), beyond KNOWN_CYCLES;
// 2. no `instanceof` of a class imported from another top-level folder of src/ (src/api checking `instanceof
//    VmManager`), beyond KNOWN_INSTANCEOF. Files directly in src/ (errors.ts, metrics.ts) belong to no folder: they
//    are the shared vocabulary, so `instanceof HangarError` is fine.
// Both lists hold exactly today's offenders: a new one fails, and so does a listed one that is gone (shrink the list).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Each cycle as printed by `cycleKey`: starts at its smallest file, ends where it started. */
const KNOWN_CYCLES: string[] = [];

/** `file: instanceof Name (from folder)`. */
const KNOWN_INSTANCEOF: string[] = [];

// ---- the parser: files are keyed by their path relative to src/, with '/' separators ----

interface ImportDecl {
  specifier: string;
  /** Names bound to values or types: `{ a as b }` binds local b to imported a; `* as ns` binds ns (namespace). */
  names: { local: string; imported: string; namespace: boolean }[];
}

const IMPORT_RE = /^[ \t]*import\s+(?:type\s+)?((?:[\w$]+\s*,?\s*)?(?:\{[^}]*\}|\*\s*as\s+[\w$]+)?)\s*from\s*['"]([^'"]+)['"]/gm;
const EXPORT_FROM_RE = /^[ \t]*export\s+(?:type\s+)?(?:\*(?:\s*as\s+[\w$]+)?|\{[^}]*\})\s*from\s*['"]([^'"]+)['"]/gm;
const SIDE_EFFECT_RE = /^[ \t]*import\s*['"]([^'"]+)['"]/gm;

function bindings(clause: string): ImportDecl['names'] {
  const names: ImportDecl['names'] = [];
  const ns = /\*\s*as\s+([\w$]+)/.exec(clause);
  if (ns) names.push({ local: ns[1]!, imported: '*', namespace: true });
  const braces = /\{([^}]*)\}/.exec(clause);
  for (const part of braces ? braces[1]!.split(',') : []) {
    const [imported, local = imported] = part.trim().replace(/^type\s+/, '').split(/\s+as\s+/).map((w) => w.trim());
    if (imported) names.push({ local: local!, imported, namespace: false });
  }
  const dflt = /^([\w$]+)\s*(?:,|$)/.exec(clause.trim());
  if (dflt) names.push({ local: dflt[1]!, imported: dflt[1]!, namespace: false });
  return names;
}

function parseImports(source: string): ImportDecl[] {
  const out: ImportDecl[] = [];
  for (const m of source.matchAll(IMPORT_RE)) out.push({ specifier: m[2]!, names: bindings(m[1]!) });
  for (const m of source.matchAll(EXPORT_FROM_RE)) out.push({ specifier: m[1]!, names: [] });
  for (const m of source.matchAll(SIDE_EFFECT_RE)) out.push({ specifier: m[1]!, names: [] });
  return out;
}

/** The file a relative specifier names ('./x.js' → 'dir/x.ts'), if it is one of `files`; else null (a package). */
function resolve(from: string, specifier: string, files: ReadonlySet<string>): string | null {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return null;
  const target = posix.normalize(posix.join(posix.dirname(from), specifier)).replace(/\.js$/, '.ts');
  return files.has(target) ? target : null;
}

type Graph = Map<string, Set<string>>;

function importGraph(sources: ReadonlyMap<string, string>): Graph {
  const files = new Set(sources.keys());
  const g: Graph = new Map();
  for (const [file, src] of sources) {
    const deps = new Set<string>();
    for (const d of parseImports(src)) {
      const t = resolve(file, d.specifier, files);
      if (t) deps.add(t);
    }
    g.set(file, deps);
  }
  return g;
}

/** A cycle rotated to start at its smallest file, closed: 'a -> b -> a'. */
function cycleKey(cycle: string[]): string {
  const i = cycle.indexOf([...cycle].sort()[0]!);
  const r = [...cycle.slice(i), ...cycle.slice(0, i)];
  return [...r, r[0]].join(' -> ');
}

/**
 * Every elementary cycle (each once, as cycleKey). Depth-first from each file s, over files greater than s only,
 * so a cycle is found from its smallest file; fine for a graph of this size.
 */
function findCycles(g: Graph): string[] {
  const out = new Set<string>();
  const nodes = [...g.keys()].sort();
  for (const s of nodes) {
    const path: string[] = [s];
    const onPath = new Set(path);
    const walk = (n: string): void => {
      for (const next of [...(g.get(n) ?? [])].sort()) {
        if (next === s) out.add(cycleKey(path));
        else if (next > s && !onPath.has(next)) {
          path.push(next);
          onPath.add(next);
          walk(next);
          onPath.delete(next);
          path.pop();
        }
      }
    };
    walk(s);
  }
  return [...out].sort();
}

const folderOf = (file: string): string | null => (file.includes('/') ? file.slice(0, file.indexOf('/')) : null);

/** `file: instanceof Name (from folder)` for every instanceof of a name imported from another top-level folder. */
function crossFolderInstanceof(sources: ReadonlyMap<string, string>): string[] {
  const files = new Set(sources.keys());
  const out = new Set<string>();
  for (const [file, src] of sources) {
    const foreign = new Map<string, { folder: string; imported: string; namespace: boolean }>();
    for (const d of parseImports(src)) {
      const t = resolve(file, d.specifier, files);
      const folder = t ? folderOf(t) : null;
      if (!folder || folder === folderOf(file)) continue;
      for (const n of d.names) foreign.set(n.local, { folder, imported: n.imported, namespace: n.namespace });
    }
    for (const m of src.matchAll(/\binstanceof\s+([\w$]+)(?:\.([\w$]+))?/g)) {
      const f = foreign.get(m[1]!);
      if (!f || (f.namespace && !m[2])) continue;
      out.add(`${file}: instanceof ${f.namespace ? m[2]! : f.imported} (from ${f.folder})`);
    }
  }
  return [...out].sort();
}

// ---- reading src/ ----

const SRC = join(fileURLToPath(new URL('../..', import.meta.url)), 'src'); // dist/test/ → the checkout

function readSources(dir: string, out = new Map<string, string>()): Map<string, string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) readSources(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.set(relative(SRC, p).split('\\').join('/'), readFileSync(p, 'utf8'));
  }
  return out;
}

function compare(found: string[], known: string[], what: string): void {
  const fresh = found.filter((c) => !known.includes(c));
  const gone = known.filter((c) => !found.includes(c));
  assert.deepEqual(fresh, [], `new ${what} in src/:\n  ${fresh.join('\n  ')}`);
  assert.deepEqual(gone, [], `listed ${what} that are gone (remove them from the list):\n  ${gone.join('\n  ')}`);
}

// ---- the parser on tiny in-memory graphs ----

test('parser: import, import type, default + named, namespace, multi-line, export from, side effect; not dynamic', () => {
  const src = [
    "import { a, b as c } from './a.js';",
    "import type { T } from '../t/types.js';",
    "import D, { e } from './d.js';",
    "import * as ns from './ns.js';",
    'import {\n  x,\n  type Y,\n} from "./multi.js";',
    "export { z } from './z.js';",
    "export type { W } from './w.js';",
    "export * from './all.js';",
    "import './side.js';",
    "import { readFile } from 'node:fs/promises';",
    "const later = await import('./dynamic.js');",
    "// import { no } from './comment.js';",
    "const s = 'import { no } from \"./string.js\"';",
  ].join('\n');
  const got = parseImports(src);
  assert.deepEqual(got.map((d) => d.specifier).sort(), ['../t/types.js', './a.js', './all.js', './d.js', './multi.js', './ns.js', './side.js', './w.js', './z.js', 'node:fs/promises'].sort());
  const names = (spec: string): string[] => got.find((d) => d.specifier === spec)!.names.map((n) => `${n.imported}:${n.local}`).sort();
  assert.deepEqual(names('./a.js'), ['a:a', 'b:c']);
  assert.deepEqual(names('./d.js'), ['D:D', 'e:e']);
  assert.deepEqual(names('./ns.js'), ['*:ns']);
  assert.deepEqual(names('./multi.js'), ['Y:Y', 'x:x']);
});

test('resolve: relative .js to .ts among the files; packages and unknown files are not edges', () => {
  const files = new Set(['api/server.ts', 'vm/manager.ts', 'errors.ts']);
  assert.equal(resolve('api/server.ts', '../vm/manager.js', files), 'vm/manager.ts');
  assert.equal(resolve('api/server.ts', '../errors.js', files), 'errors.ts');
  assert.equal(resolve('vm/manager.ts', './manager.js', files), 'vm/manager.ts');
  assert.equal(resolve('api/server.ts', 'fastify', files), null);
  assert.equal(resolve('api/server.ts', './assets/viewer.js', files), null);
});

test('cycles: found once each, from their smallest file, with type-only and re-export edges; a DAG has none', () => {
  const sources = new Map([
    ['a/one.ts', "import { two } from '../b/two.js';"],
    ['b/two.ts', "import type { Three } from './three.js';\nimport { one } from '../a/one.js';"],
    ['b/three.ts', "export { one } from '../a/one.js';"],
    ['c/self.ts', "import { me } from './self.js';"],
    ['d/leaf.ts', "import { one } from '../a/one.js';"],
  ]);
  assert.deepEqual(findCycles(importGraph(sources)), [
    'a/one.ts -> b/two.ts -> a/one.ts',
    'a/one.ts -> b/two.ts -> b/three.ts -> a/one.ts',
    'c/self.ts -> c/self.ts',
  ]);
  assert.deepEqual(findCycles(importGraph(new Map([['x.ts', "import './y.js';"], ['y.ts', "import 'z';"]]))), []);
  assert.equal(cycleKey(['b', 'c', 'a']), 'a -> b -> c -> a');
});

test('instanceof: only of names imported from another top-level folder (named, aliased, namespace)', () => {
  const sources = new Map([
    ['vm/manager.ts', 'export class VmManager {}\nexport class Local {}'],
    ['vm/other.ts', "import { Local } from './manager.js';\nif (x instanceof Local) {}"],
    ['errors.ts', 'export class HangarError extends Error {}'],
    ['api/routes.ts', [
      "import { VmManager as M } from '../vm/manager.js';",
      "import * as vm from '../vm/manager.js';",
      "import { HangarError } from '../errors.js';",
      'if (s instanceof M || s instanceof vm.Local || e instanceof HangarError || e instanceof Error) {}',
    ].join('\n')],
  ]);
  assert.deepEqual(crossFolderInstanceof(sources), [
    'api/routes.ts: instanceof Local (from vm)',
    'api/routes.ts: instanceof VmManager (from vm)',
  ]);
});

// ---- the rules on src/ ----

test('src/ has no import cycle beyond KNOWN_CYCLES', () => {
  const sources = readSources(SRC);
  assert.ok(sources.size > 50, `read ${sources.size} files from ${SRC}`);
  compare(findCycles(importGraph(sources)), KNOWN_CYCLES, 'import cycles');
});

test('src/ has no instanceof of a class from another top-level folder beyond KNOWN_INSTANCEOF', () => {
  compare(crossFolderInstanceof(readSources(SRC)), KNOWN_INSTANCEOF, 'cross-folder instanceof');
});
