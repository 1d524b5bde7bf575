// The command line parser: values in both spellings, negative numbers, integer checks, unknown options with a
// did-you-mean, missing and extra arguments — each one INVALID_ARGUMENT with a message naming the mistake.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { editDistance, parseArgv, suggest, ownWords } from '../../src/cli/args.js';
import type { ArgDef, OptionSpec } from '../../src/cli/command.js';
import { isHangarError } from '../../src/errors.js';

const options: OptionSpec = {
  ttl: { type: 'string', int: true, arg: 'SECONDS', description: 'x' },
  name: { type: 'string', arg: 'NAME', description: 'x' },
  json: { type: 'boolean', description: 'x' },
  'no-wait': { type: 'boolean', description: 'x' },
};
const args: ArgDef[] = [{ name: 'ID', description: 'the VM' }];
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const parse = (argv: string[], a: ArgDef[] = args): ReturnType<typeof parseArgv> => parseArgv(argv, options, a, 'hangar vm x');

function refused(argv: string[], re: RegExp, a: ArgDef[] = args): Record<string, unknown> {
  try {
    parse(argv, a);
  } catch (e) {
    assert.ok(isHangarError(e, 'INVALID_ARGUMENT'), String(e));
    assert.match(e.message, re);
    assert.equal(e.details.hint, "see 'hangar vm x --help'");
    return { ...e.details };
  }
  assert.fail(`${argv.join(' ')} was accepted`);
}

test('--flag value and --flag=value are the same; booleans; positionals anywhere; -- ends options', () => {
  assert.deepEqual(parse(['alice', '--name', 'bob', '--json']), { values: { name: 'bob', json: true }, positionals: ['alice'] });
  assert.deepEqual(parse(['--name=bob', 'alice', '--no-wait']), { values: { name: 'bob', 'no-wait': true }, positionals: ['alice'] });
  assert.deepEqual(parse(['--', '--json']), { values: {}, positionals: ['--json'] });
  assert.deepEqual(parse(['--name=a=b', 'x']).values, { name: 'a=b' });
});

test('negative numbers are values: --ttl -1 and --ttl=-1 both give ttl "-1" (the range is the server\'s to judge)', () => {
  assert.deepEqual(parse(['x', '--ttl', '-1']).values, { ttl: '-1' });
  assert.deepEqual(parse(['x', '--ttl=-1']).values, { ttl: '-1' });
  assert.deepEqual(parse(['-5']).positionals, ['-5']);
});

test('integer options are checked here: one message naming the flag and what was typed', () => {
  for (const v of ['abc', '1.5', '', '10s']) {
    const d = refused(['x', `--ttl=${v}`], new RegExp(`^--ttl must be an integer \\(got ${escape(JSON.stringify(v))}\\)$`));
    assert.deepEqual([d.flag, d.reason, d.expected], ['--ttl', 'type', 'integer']);
  }
});

test('unknown options: did you mean the closest one', () => {
  refused(['x', '--nmae', 'bob'], /^unknown option '--nmae' for 'hangar vm x'; did you mean '--name'\?$/);
  refused(['x', '--jsno'], /did you mean '--json'\?/);
  refused(['x', '--no-wiat'], /did you mean '--no-wait'\?/);
  refused(['x', '--hepl'], /did you mean '--help'\?/);
  refused(['x', '--zzzzzz'], /^unknown option '--zzzzzz' for 'hangar vm x'$/);
  refused(['x', '-q'], /^unknown option '-q'/);
  refused(['x', '--constructor'], /unknown option '--constructor'/);
});

test('values: a string option needs one, a boolean takes none', () => {
  refused(['x', '--name'], /^--name needs a value \(NAME\)$/);
  refused(['x', '--name', '--json'], /^--name needs a value \(NAME\); to give one that starts with '-', write --name=VALUE$/);
  refused(['x', '--json=yes'], /^--json takes no value \(got "yes"\)$/);
});

test('missing and extra positional arguments are refused by name', () => {
  refused([], /^missing ID: the VM$/);
  const d = refused(['a', 'b'], /^unexpected argument "b": 'hangar vm x' takes ID$/);
  assert.equal(d.argument, 'b');
  refused(['a'], /^unexpected argument "a": 'hangar vm x' takes no arguments$/, []);
  assert.deepEqual(parse([], [{ name: 'N', description: 'n', optional: true }]).positionals, []);
});

test('edit distance and suggestions', () => {
  assert.equal(editDistance('lss', 'ls'), 1);
  assert.equal(editDistance('craete', 'create'), 1, 'a transposition is one edit');
  assert.equal(editDistance('', 'abc'), 3);
  assert.deepEqual(suggest('lss', ['ls', 'rm', 'show']), ['ls']);
  assert.deepEqual(suggest('cr', ['create', 'console']), ['create'], 'a prefix');
  assert.deepEqual(suggest('xyz', ['ls', 'rm']), []);
  assert.deepEqual(suggest('sart', ['start', 'stop']), ['start']);
});

test('a rest argument takes every word from its first on; short aliases and repeated options', () => {
  const opts = { env: { type: 'string', description: 'e', repeat: true }, interactive: { type: 'boolean', description: 'i', short: 'i' }, cwd: { type: 'string', description: 'c' } } as const;
  const args = [{ name: 'ID', description: 'id' }, { name: 'CMD', description: 'cmd', optional: true, rest: true }];
  const p = parseArgv(['alice', '-i', '--env', 'A=1', '--env=B=2', 'ls', '-la', '--cwd', '/x'], opts, args, 'hangar vm exec');
  assert.deepEqual(p.values, { interactive: true, env: ['A=1', 'B=2'] });
  assert.deepEqual(p.positionals, ['alice', 'ls', '-la', '--cwd', '/x']);
  assert.throws(() => parseArgv(['alice', '--bogus', 'ls'], opts, args, 'hangar vm exec'), /unknown option '--bogus'/);
  assert.deepEqual(ownWords(['alice', '--cwd', '/x', 'ls', '--help'], opts, args), ['alice', '--cwd', '/x']);
  assert.deepEqual(ownWords(['alice', '--help'], opts, args), ['alice', '--help']);
});
