// The console-log ports of the boot executor (src/vm/booter.ts): the log a VMM writes the guest console into is
// made 0600 before the VMM starts (QEMU and Firecracker keep an existing file's mode), and appending keeps it so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync, writeFileSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appendConsoleLine, CONSOLE_MODE, resetConsoleFile } from '../../src/vm/booter.js';

const mode = (p: string): number => statSync(p).mode & 0o777;

test('resetConsole: an empty 0600 console log exists before the VMM opens it, whatever the umask or the old file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-console-'));
  const old = process.umask(0);
  try {
    const path = join(dir, 'run', 'console.log');
    await resetConsoleFile(path); // the run directory may not exist yet
    assert.equal(mode(path), CONSOLE_MODE);
    writeFileSync(path, 'old boot\n');
    chmodSync(path, 0o644);
    await resetConsoleFile(path);
    assert.equal(readFileSync(path, 'utf8'), '');
    assert.equal(mode(path), 0o600);
    // What a VMM does with it: open for writing (QEMU's chardev truncates, Firecracker's log appends) keeps the mode.
    closeSync(openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o666));
    assert.equal(mode(path), 0o600);
  } finally {
    process.umask(old);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('appendConsole: creates the log 0600 and makes an existing readable one 0600', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-console-'));
  const old = process.umask(0);
  try {
    const path = join(dir, 'console.log');
    await appendConsoleLine(path, 'restored\n');
    assert.equal(mode(path), 0o600);
    chmodSync(path, 0o644);
    await appendConsoleLine(path, 'again\n');
    assert.equal(mode(path), 0o600);
    assert.equal(readFileSync(path, 'utf8'), 'restored\nagain\n');
  } finally {
    process.umask(old);
    rmSync(dir, { recursive: true, force: true });
  }
});
