// `hangar doctor --console FILE`: exit codes, JSON shape and the human table, on real captured logs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { commands } from '../../src/cli/doctor.js';
import type { Command } from '../../src/cli/command.js';
import { exitCodeOf, isHangarError } from '../../src/errors.js';
import { lineRanges } from '../../src/doctor/report.js';
import { ROOT } from '../support/env.js';

const fixture = (name: string): string => join(ROOT, 'test', 'fixtures', 'console', name);
const doctor = commands.find((c) => c.path.join(' ') === 'doctor') as Command;

/** Runs the command the way src/cli/main.ts does: strict option parsing, HangarError → exit code. */
async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io = { out: (s: string) => { out += s; }, err: (s: string) => { err += s; } };
  try {
    const p = parseArgs({ args: argv, options: doctor.options, allowPositionals: true, strict: true });
    return { code: await doctor.run({ values: p.values as Record<string, string | boolean | undefined>, positionals: p.positionals }, io), out, err };
  } catch (e) {
    if (!isHangarError(e)) throw e;
    return { code: exitCodeOf(e.code), out, err: `${e.code}: ${e.message}` };
  }
}

test('healthy log: exit 0, JSON { ok, findings, timeline, facts }', async () => {
  const r = await cli(['--console', fixture('healthy.log'), '--json']);
  assert.equal(r.code, 0);
  const j = JSON.parse(r.out) as { ok: boolean; findings: { code: string; evidence: { line: number; text: string }[] }[]; timeline: Record<string, number | null>; facts: { kernelVersion: string } };
  assert.deepEqual(Object.keys(j).sort(), ['facts', 'findings', 'ok', 'timeline']);
  assert.equal(j.ok, true);
  assert.equal(j.findings[0]?.code, 'CON_READY');
  assert.equal(j.facts.kernelVersion, '6.1.192');
  assert.equal(typeof j.timeline.ready, 'number');
});

test('wrong root: exit 1, the table puts the root cause first with its evidence lines, consequences marked', async () => {
  const r = await cli(['--console', fixture('wrong-root.log')]);
  assert.equal(r.code, 1);
  const rows = r.out.split('\n').filter((l) => /^\d+\s+(error|warning|info)\s/.test(l));
  assert.match(rows[0]!, /^1\s+error\s+CON_ROOT_DEVICE_MISSING\s+44, 123-126\s/);
  assert.match(rows[1]!, /CON_KERNEL_PANIC .*← CON_ROOT_DEVICE_MISSING/);
  assert.match(r.out, /Most likely cause: CON_ROOT_DEVICE_MISSING/);
  assert.match(r.out, /Fix: Boot with root=\/dev\/vda/);
});

test('a clone\'s saved log (a restore marker, no boot): exit 0, the head says there is no boot to judge', async () => {
  const r = await cli(['--console', fixture('synth-clone.log'), '--expect-ip', '172.16.0.2']);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^No boot in this log; restored 1 time\(s\), last at line 2/);
  assert.match(r.out, /CON_RESTORED/);
  assert.match(r.out, /No error found\./);
});

test('--expect-ip: a guest that is not where the host expects it fails', async () => {
  assert.equal((await cli(['--console', fixture('healthy.log'), '--expect-ip', '172.16.0.2'])).code, 0);
  const r = await cli(['--console', fixture('synth-guest-readdressed.log'), '--expect-ip', '172.16.0.2', '--json']);
  assert.equal(r.code, 1);
  assert.ok((JSON.parse(r.out) as { findings: { code: string }[] }).findings.some((f) => f.code === 'CON_IP_MISMATCH'));
  const bad = await cli(['--console', fixture('healthy.log'), '--expect-ip', '300.1.1.1']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /^INVALID_ARGUMENT/);
});

test('unreadable input: exit 2 with CONSOLE_UNREADABLE (missing file, a directory); --expect-ip without --console: exit 2', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-doctor-'));
  try {
    const missing = await cli(['--console', join(dir, 'nope.log')]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /^CONSOLE_UNREADABLE: cannot read console log .*ENOENT/);
    const isDir = await cli(['--console', dir]);
    assert.equal(isDir.code, 2);
    assert.match(isDir.err, /^CONSOLE_UNREADABLE: .* is not a regular file/);
    writeFileSync(join(dir, 'empty.log'), '');
    const empty = await cli(['--console', join(dir, 'empty.log')]);
    assert.equal(empty.code, 1, 'an empty log is readable: its finding is CON_EMPTY_LOG');
    assert.match(empty.out, /CON_EMPTY_LOG/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const none = await cli(['--expect-ip', '10.0.0.2']);
  assert.equal(none.code, 2);
  assert.match(none.err, /^INVALID_ARGUMENT/);
  const both = await cli(['--console', fixture('healthy.log'), '--vm', 'x']);
  assert.equal(both.code, 2);
});

test('without --console the doctor asks the controller: nobody listening is CONTROLLER_UNREACHABLE (exit 5)', async () => {
  const saved = { url: process.env.HANGAR_URL, token: process.env.HANGAR_TOKEN };
  process.env.HANGAR_URL = 'http://127.0.0.1:9'; // discard port on loopback: connection refused
  process.env.HANGAR_TOKEN = 'test-token';
  try {
    const r = await cli(['--vm', 'vm-1']);
    assert.equal(r.code, 5);
    assert.match(r.err, /^CONTROLLER_UNREACHABLE/);
  } finally {
    for (const [k, v] of [['HANGAR_URL', saved.url], ['HANGAR_TOKEN', saved.token]] as const) {
      if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
  }
});

test('lineRanges folds consecutive evidence lines', () => {
  const ev = (...ns: number[]) => ({ code: 'X', severity: 'error' as const, option: null, message: '', fix: '', evidence: ns.map((line) => ({ line, text: '' })) });
  assert.equal(lineRanges(ev(3, 120, 121, 122, 7)), '3, 7, 120-122');
  assert.equal(lineRanges(ev()), '-');
});
