// The doctor's human output: evidence and messages whole, wrapped to the terminal's width, never cut.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DoctorFinding, DoctorReport } from '../../src/doctor/model.js';
import { renderConsoleReport, renderDoctorReport, terminalWidth, wrap } from '../../src/doctor/report.js';
import { classifyConsole } from '../../src/doctor/console.js';

// 300 characters: words, a path longer than any line, and spacing inside the line that must survive.
const LONG = [
  'qemu-system-x86_64: could not open kernel file',
  `'/var/lib/hangar/snapshots/snap-0123abcd/${'deeply/nested/'.repeat(6)}vmlinux':`,
  'No such file or directory  (after   the restore of the hibernation of 2026-11-27T10:00:00.000Z);',
].join(' ').padEnd(299, '.') + '!';

const finding: DoctorFinding = {
  code: 'DOC_VM_FILE_MISSING', severity: 'error', option: null, check: 'vm.files',
  message: `The VM's kernel is missing: ${LONG}`, fix: 'Destroy the clone and clone an existing snapshot.',
  evidence: [{ text: LONG }, { line: 7, text: 'short line' }],
};
const report: DoctorReport = {
  ok: false, vm: { id: 'vm-1', name: 'bob', state: 'failed', ip: '10.0.0.3', mac: null, tap: null, snapshotId: 'snap-0123abcd', hibernated: true },
  checks: [{ id: 'vm.files', scope: 'vm', title: 'Files', ran: [`stat ${LONG}`], saw: LONG, status: 'error', findings: [finding], ms: 1 }],
  findings: [finding], mostLikelyCause: finding, startedAt: '2026-11-27T10:00:00.000Z', durationMs: 12,
};

const squash = (s: string): string => s.replace(/\s+/g, '');

for (const width of [80, 200]) {
  test(`a 300-character evidence line at width ${width}: wrapped, never cut`, () => {
    assert.equal(LONG.length, 300);
    const out = renderDoctorReport(report, width);
    const lines = out.split('\n');
    for (const l of lines) assert.ok(l.length <= width, `a line of ${l.length} > ${width}: ${JSON.stringify(l)}`);
    assert.ok(!out.includes('…'), 'nothing is clipped');
    // The evidence block: "  | " and its continuation lines, up to the next evidence line.
    const start = lines.findIndex((l) => l.startsWith('  | qemu-system'));
    assert.ok(start > 0, out);
    const end = lines.findIndex((l, i) => i > start && !l.startsWith('    '));
    const block = lines.slice(start, end).map((l) => l.slice(4)).join('\n');
    assert.equal(squash(block), squash(LONG), 'the evidence comes out whole');
    assert.ok(block.includes('directory  (after   the restore'), 'spacing inside a line is kept where it does not wrap');
    assert.equal(lines[end], '  | 7: short line');
    // The message (table and verdict) and the check line are whole too.
    assert.ok(squash(out).split(squash(LONG)).length - 1 >= 4, 'the long text appears whole in the check, the table, the verdict message and the evidence');
    assert.match(out, /^VM vm-1 \(bob\): failed \(hibernated, clone of snap-0123abcd\)/);
  });
}

test('wrap: breaks at spaces, splits what is longer than a line, keeps every character', () => {
  assert.deepEqual(wrap('aaaaaaaaaa bbbbbbbbbb cccccccccc', 24), ['aaaaaaaaaa bbbbbbbbbb', 'cccccccccc']);
  // Never narrower than 24 columns of text: a line gets longer than the width rather than unreadable.
  assert.deepEqual(wrap('aaa bbb ccc', 7), ['aaa bbb ccc']);
  assert.deepEqual(wrap('x'.repeat(60), 30, '  ', 0), ['x'.repeat(30), `  ${'x'.repeat(28)}`, '  xx']);
  assert.deepEqual(wrap('', 10), ['']);
  assert.deepEqual(wrap('one\ntwo', 80), ['one', 'two']);
});

test('the width is the terminal\'s, 100 when stdout is not a terminal', () => {
  assert.equal(terminalWidth({ isTTY: true, columns: 213 }), 213);
  assert.equal(terminalWidth({ isTTY: false, columns: 213 }), 100);
  assert.equal(terminalWidth({}), 100);
});

test('the console report wraps its findings to the width too', () => {
  const r = classifyConsole(`[    0.000000] Linux version 6.1.192\n[    1.0] Kernel panic - not syncing: ${LONG}\n`);
  for (const width of [80, 200]) {
    const out = renderConsoleReport(r, width);
    for (const l of out.split('\n')) assert.ok(l.length <= width, `${l.length} > ${width}: ${l}`);
    assert.ok(squash(out).includes(squash(LONG)), 'the panic reason comes out whole');
  }
});
