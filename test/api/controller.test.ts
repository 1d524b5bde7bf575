// Unit parts of the composition root (src/api/controller.ts) that need no host network: the endpoint file
// (controller.json) is written atomically and 0600, and a starting controller sets its umask first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadControllerConfig } from '../../src/api/config.js';
import { CONTROLLER_UMASK, startController, writeEndpoint } from '../../src/api/controller.js';
import { isHangarError } from '../../src/errors.js';

test('endpoint file: replaces an old 0644 controller.json with a new 0600 file, nothing half-written left', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-endpoint-'));
  try {
    const path = join(dir, 'controller.json');
    writeFileSync(path, '{"url":"http://old","pid":1}\n');
    chmodSync(path, 0o644);
    const ino = statSync(path).ino;
    await writeEndpoint(path, 'http://127.0.0.1:7070');
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { url: 'http://127.0.0.1:7070', pid: process.pid });
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.notEqual(statSync(path).ino, ino, 'renamed over, not rewritten in place');
    assert.deepEqual(readdirSync(dir), ['controller.json']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('startController sets the umask to 0077 before its first step', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-umask-'));
  const old = process.umask(0o022);
  try {
    // The state database cannot be opened, so the start fails at its first step (nothing on the host is touched).
    writeFileSync(join(dir, 'not-a-dir'), '');
    const config = { ...loadControllerConfig({ env: { HANGAR_STATE_DIR: dir } }), dbPath: join(dir, 'not-a-dir', 'state.db') };
    await assert.rejects(startController(config, { logStream: new Writable({ write: (_c, _e, cb) => cb() }) }), (e) => isHangarError(e, 'STORE_ERROR'));
    assert.equal(process.umask(), CONTROLLER_UMASK);
    assert.equal(CONTROLLER_UMASK, 0o077);
  } finally {
    process.umask(old);
    rmSync(dir, { recursive: true, force: true });
  }
});
