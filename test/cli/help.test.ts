// The help a new user reaches: for hangar, every group and every command, in every way of asking for it; the
// version; did-you-mean; the environment variables the CLI reads, in the help and in the README.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { COMMANDS } from '../../src/cli/main.js';
import { GROUPS } from '../../src/cli/help.js';
import { ROOT } from '../support/env.js';
import { hangar } from './fake-api.js';

const groups = [...new Set(COMMANDS.filter((c) => c.path.length > 1).map((c) => c.path[0]!))];

function assertHelp(r: { code: number; out: string; err: string }, usage: string, what: string): void {
  assert.equal(r.code, 0, `${what}: exit 0 (${r.err})`);
  assert.equal(r.err, '', `${what}: nothing on stderr`);
  assert.ok(r.out.startsWith(`Usage: ${usage}`), `${what}: usage line first, got ${r.out.split('\n')[0]}`);
  assert.match(r.out, /\nExamples:\n {2}hangar \S/, `${what}: at least one example`);
}

test('hangar --help, -h and help: the whole CLI on stdout, exit 0; bare hangar: the same on stderr, exit 2', async () => {
  for (const argv of [['--help'], ['-h'], ['help']]) {
    const r = await hangar(argv);
    assertHelp(r, 'hangar <command>', argv.join(' '));
    for (const g of groups) assert.match(r.out, new RegExp(`\\n {2}${g} `), `group ${g} listed`);
    for (const c of COMMANDS.filter((x) => x.path.length === 1)) assert.match(r.out, new RegExp(`\\n {2}${c.path[0]} `));
  }
  const bare = await hangar([]);
  assert.equal(bare.code, 2);
  assert.equal(bare.out, '');
  assert.match(bare.err, /^Usage: hangar <command>/);
});

test('every group prints its help: hangar G, hangar G --help, hangar G -h, hangar G help, hangar help G', async () => {
  assert.deepEqual(groups.sort(), Object.keys(GROUPS).sort(), 'every group has a summary and examples');
  for (const g of groups) {
    for (const argv of [[g], [g, '--help'], [g, '-h'], [g, 'help'], ['help', g]]) {
      const r = await hangar(argv);
      assertHelp(r, `hangar ${g} <command>`, argv.join(' '));
      for (const c of COMMANDS.filter((x) => x.path[0] === g)) assert.match(r.out, new RegExp(`\\n {2}${c.path.slice(1).join(' ')} `), `${argv.join(' ')} lists ${c.path.join(' ')}`);
    }
  }
});

test('every command prints its help with usage, every option described, and an example', async () => {
  for (const c of COMMANDS) {
    const name = c.path.join(' ');
    assert.ok(c.examples.length > 0 && c.examples.every((e) => e.startsWith('hangar ')), `${name}: examples`);
    const forms = [[...c.path, '--help'], [...c.path, '-h'], ['help', ...c.path]];
    if (c.path.length > 1) forms.push([c.path[0]!, 'help', ...c.path.slice(1)]);
    for (const argv of forms) {
      const r = await hangar(argv);
      assertHelp(r, `hangar ${name}`, argv.join(' '));
      for (const [opt, def] of Object.entries(c.options)) {
        assert.ok(def.description.length > 0, `${name} --${opt} has a description`);
        assert.match(r.out, new RegExp(`\\n {2}--${opt}\\b.* {2}\\S`), `${argv.join(' ')} describes --${opt}`);
      }
    }
  }
});

test('--help wins over everything else on the line (even a wrong option)', async () => {
  assertHelp(await hangar(['vm', 'create', '--vcpus', 'x', '--bogus', '--help']), 'hangar vm create', 'vm create … --help');
});

test('--from-snapshot is in vm create --help and in the README', async () => {
  assert.match((await hangar(['vm', 'create', '--help'])).out, /--from-snapshot ID/);
  assert.match(readFileSync(join(ROOT, 'README.md'), 'utf8'), /vm create --from-snapshot/);
});

test('--version and -V print the version of the installed package', async () => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const r = await hangar([flag]);
    assert.equal(r.code, 0);
    assert.equal(r.out, `hangar ${version}\n`);
  }
  assert.deepEqual(JSON.parse((await hangar(['--version', '--json'])).out), { version });
});

test('unknown commands: exit 2 with a did-you-mean from edit distance', async () => {
  const cases: [string[], RegExp][] = [
    [['vm', 'lss'], /unknown command 'hangar vm lss'; did you mean 'hangar vm ls'\?/],
    [['vm', 'craete'], /did you mean 'hangar vm create'\?/],
    [['snapshots', 'ls'], /unknown command 'snapshots'; did you mean 'hangar snapshot'\?/],
    [['evnets'], /did you mean 'hangar events'\?/],
    [['vm', 'frobnicate'], /unknown command 'hangar vm frobnicate'\n {2}'hangar vm --help' lists/],
    [['help', 'vm', 'lss'], /did you mean 'hangar vm ls'\?/],
    [['--verison'], /unknown option '--verison'; did you mean 'hangar --version'\?/],
  ];
  for (const [argv, re] of cases) {
    const r = await hangar(argv);
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.err, re, argv.join(' '));
  }
  const json = await hangar(['vm', 'lss', '--json']);
  assert.equal(json.code, 2);
  assert.equal(JSON.parse(json.out).error.code, 'INVALID_ARGUMENT');
});

/** Every environment variable name src/ reads through an env object (env.X, process.env.X, resolveBinary('X')). */
function envVarsRead(): string[] {
  const names = new Set<string>();
  const walk = (dir: string): void => {
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) {
        const text = readFileSync(p, 'utf8');
        for (const m of text.matchAll(/\benv\)?\.([A-Z][A-Z0-9_]+)/g)) names.add(m[1]!);
        for (const m of text.matchAll(/resolveBinary\('([A-Z_]+)'/g)) names.add(m[1]!);
        for (const m of text.matchAll(/\bHANGAR_[A-Z_]+(?==)/g)) names.add(m[0]);
      }
    }
  };
  walk(join(ROOT, 'src'));
  names.delete('PATH');
  return [...names].sort();
}

test('hangar --help and the README document every environment variable Hangar reads', async () => {
  const help = (await hangar(['--help'])).out;
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const vars = envVarsRead();
  for (const v of ['HANGAR_URL', 'HANGAR_TOKEN', 'HANGAR_QUIET', 'HANGAR_STATE_DIR']) assert.ok(vars.includes(v), `${v} found in src`);
  for (const v of vars) {
    assert.match(help, new RegExp(`\\n {2}${v} `), `${v} in hangar --help`);
    assert.match(readme, new RegExp(`\`${v}[\`=]`), `${v} in the README`);
  }
});
