import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../src/errors.js';
import { ConsoleScanner, CUT_MARK, logSize, MAX_LINE_BYTES, tail, waitForMarker } from '../../src/vmm/console.js';
import type { ProcessExit } from '../../src/vmm/types.js';

async function withLog(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-console-'));
  try { await fn(join(dir, 'console.log')); } finally { await rm(dir, { recursive: true, force: true }); }
}

const later = (ms: number, fn: () => Promise<unknown>): void => { setTimeout(() => { void fn(); }, ms); };

test('finds a marker written later, in pieces, before the log even exists', () => withLog(async (path) => {
  later(100, () => writeFile(path, '[    0.1] Linux version 6.1\r\nHANGAR-IN'));
  later(200, () => appendFile(path, 'IT\nxvfb up\nHANGAR-READY 5900\n'));
  const hit = await waitForMarker(path, 'HANGAR-READY', { timeoutMs: 5000, pollMs: 20 });
  assert.equal(hit.line, 'HANGAR-READY 5900');
  assert.ok(hit.elapsedMs >= 150 && hit.elapsedMs < 2000, String(hit.elapsedMs));
  const init = await waitForMarker(path, /^HANGAR-INIT$/g, { timeoutMs: 100 });
  assert.equal(init.line, 'HANGAR-INIT');
  // fromOffset skips what was already there.
  await assert.rejects(waitForMarker(path, 'HANGAR-INIT', { timeoutMs: 100, fromOffset: await logSize(path) }), (e: unknown) => isHangarError(e, 'VM_BOOT_TIMEOUT'));
}));

test('timeout is VM_BOOT_TIMEOUT with the console tail', () => withLog(async (path) => {
  await writeFile(path, Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n') + '\nKernel panic - not syncing: VFS');
  await assert.rejects(waitForMarker(path, 'HANGAR-READY', { timeoutMs: 150, tailLines: 3 }), (e: unknown) => {
    assert.ok(isHangarError(e, 'VM_BOOT_TIMEOUT'));
    assert.equal(e.details.consoleTail, 'line 98\nline 99\nKernel panic - not syncing: VFS');
    assert.equal(e.details.timeoutMs, 150);
    return true;
  });
}));

test('the VMM exiting first is VMM_CRASHED; a marker written just before the exit still counts', () => withLog(async (path) => {
  await writeFile(path, 'booting\n');
  const exit: ProcessExit = { code: 1, signal: null, by: 'unknown', at: new Date().toISOString() };
  const exited = new Promise<ProcessExit>((r) => setTimeout(() => r(exit), 100));
  await assert.rejects(waitForMarker(path, 'HANGAR-READY', { timeoutMs: 10_000, exited }), (e: unknown) => {
    assert.ok(isHangarError(e, 'VMM_CRASHED'));
    assert.deepEqual(e.details.exit, exit);
    assert.equal(e.details.consoleTail, 'booting');
    return true;
  });
  await appendFile(path, 'HANGAR-READY\n');
  const hit = await waitForMarker(path, 'HANGAR-READY', { timeoutMs: 10_000, exited: Promise.resolve(exit) });
  assert.equal(hit.line, 'HANGAR-READY');
}));

test('abort is CANCELLED', () => withLog(async (path) => {
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(waitForMarker(path, 'x', { timeoutMs: 10_000, signal: ac.signal }), (e: unknown) => isHangarError(e, 'CANCELLED'));
}));

test('tail returns the last lines, or nothing for a missing file', () => withLog(async (path) => {
  assert.equal(await tail(path, 5), '');
  await writeFile(path, 'a\r\nb\nc\n');
  assert.equal(await tail(path, 2), 'b\nc');
  assert.equal(await tail(path, 10), 'a\nb\nc');
}));

test('a 16 MiB console line without a newline: each poll is cheap, the line is cut and marked, READY after it is found', () => withLog(async (path) => {
  await writeFile(path, Buffer.alloc(16 * 1024 * 1024, 'A'));
  const scanner = new ConsoleScanner(path);
  const times: number[] = [];
  const lines: string[] = [];
  for (let i = 0; i < 4; i++) {
    const t = performance.now();
    lines.push(...(await scanner.poll()).map((l) => l.text));
    times.push(performance.now() - t);
  }
  // The line grows on: polls that find nothing new cost a stat, not a re-read of the unfinished line.
  await appendFile(path, Buffer.alloc(1024 * 1024, 'B'));
  const t = performance.now();
  lines.push(...(await scanner.poll()).map((l) => l.text));
  times.push(performance.now() - t);
  console.log(`16 MiB newline-less console: polls took ${times.map((x) => x.toFixed(2)).join(', ')} ms`);
  for (const x of times) assert.ok(x < 50, `a poll took ${x.toFixed(1)} ms`);
  assert.equal(lines.length, 1, 'one cut line, reported once');
  assert.equal(lines[0], 'A'.repeat(MAX_LINE_BYTES) + CUT_MARK);
  await appendFile(path, 'tail of the long line\nHANGAR-READY 5900\n');
  const hit = await waitForMarker(path, 'HANGAR-READY', { timeoutMs: 5000, pollMs: 5 });
  assert.equal(hit.line, 'HANGAR-READY 5900');
  assert.equal(hit.offset, 17 * 1024 * 1024 + 'tail of the long line\nHANGAR-READY 5900\n'.length);
}));

test('the scanner keeps a carry across polls, strips \\r, and starts over when the log shrinks', () => withLog(async (path) => {
  const scanner = new ConsoleScanner(path);
  assert.deepEqual(await scanner.poll(), []);
  await writeFile(path, 'one\r\ntw');
  assert.deepEqual(await scanner.poll(), [{ text: 'one', end: 5 }]);
  assert.deepEqual(await scanner.poll(), []);
  await appendFile(path, 'o\nthr');
  assert.deepEqual(await scanner.poll(), [{ text: 'two', end: 9 }]);
  assert.equal(scanner.offset, 9);
  await writeFile(path, 'new\n');
  assert.deepEqual(await scanner.poll(), [{ text: 'new', end: 4 }]);
}));

test('a long line cut in the middle of a chunk: the next line is whole', () => withLog(async (path) => {
  await writeFile(path, 'x'.repeat(MAX_LINE_BYTES + 10) + '\nshort\n' + 'y'.repeat(MAX_LINE_BYTES) + '\n');
  const lines = await new ConsoleScanner(path).poll();
  assert.deepEqual(lines.map((l) => l.text), ['x'.repeat(MAX_LINE_BYTES) + CUT_MARK, 'short', 'y'.repeat(MAX_LINE_BYTES)]);
  assert.equal(lines[2]!.end, MAX_LINE_BYTES * 2 + 10 + 8);
}));
