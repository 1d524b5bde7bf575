// The controller's configuration, normalised once (src/api/config.ts): defaults, the file, overrides; bad values
// refused with INVALID_ARGUMENT naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadControllerConfig } from '../../src/api/config.js';
import { isHangarError } from '../../src/errors.js';

function withStateDir(fn: (dir: string, env: NodeJS.ProcessEnv) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-config-'));
  try {
    fn(dir, { HANGAR_STATE_DIR: dir, HANGAR_CACHE_DIR: join(dir, 'cache') });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('defaults: loopback listener, VM networking in its own namespaces, no extra viewer origins', () => {
  withStateDir((dir, env) => {
    const c = loadControllerConfig({ env });
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 7070 });
    assert.equal(c.createHostNetns, true);
    assert.deepEqual(c.viewerOrigins, []);
    assert.equal(c.dbPath, join(dir, 'state.db'));
  });
});

test('viewerOrigins from the file are normalised; anything that is not an http(s) origin is refused', () => {
  withStateDir((dir, env) => {
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ viewerOrigins: ['HTTPS://Desk.Example.com:443', 'http://10.0.0.5:8080'] }));
    assert.deepEqual(loadControllerConfig({ env }).viewerOrigins, ['https://desk.example.com', 'http://10.0.0.5:8080']);
    for (const bad of ['https://desk.example.com/view', '*', 'null', 'file:///x', 42] as unknown[]) {
      writeFileSync(file, JSON.stringify({ viewerOrigins: [bad] }));
      assert.throws(() => loadControllerConfig({ env }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT') && e.details.field === 'viewerOrigins', String(bad));
    }
    writeFileSync(file, JSON.stringify({ viewerOrigins: 'https://desk.example.com' }));
    assert.throws(() => loadControllerConfig({ env }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
    writeFileSync(file, '{ not json');
    assert.throws(() => loadControllerConfig({ env }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT') && /not valid JSON/.test(e.message));
  });
});

test('firecracker.jailer: off by default; uid/gid of an unprivileged user, an absolute chroot base (default /srv/jailer)', () => {
  withStateDir((dir, env) => {
    assert.equal(loadControllerConfig({ env }).firecrackerJailer, null);
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ firecracker: { jailer: { uid: 990, gid: 990 } } }));
    assert.deepEqual(loadControllerConfig({ env }).firecrackerJailer, { uid: 990, gid: 990, chrootBaseDir: '/srv/jailer' });
    writeFileSync(file, JSON.stringify({ firecracker: { jailer: { uid: 990, gid: 991, chrootBaseDir: '/var/lib/hangar/jail', binary: '/usr/local/bin/jailer' } } }));
    assert.deepEqual(loadControllerConfig({ env }).firecrackerJailer, { uid: 990, gid: 991, chrootBaseDir: '/var/lib/hangar/jail', binary: '/usr/local/bin/jailer' });
    writeFileSync(file, JSON.stringify({ firecracker: { jailer: { uid: 990, gid: 990, chrootBaseDir: '/srv/x/../jail/' } } }));
    assert.equal(loadControllerConfig({ env }).firecrackerJailer?.chrootBaseDir, '/srv/jail/', 'normalised');
    for (const bad of [{ uid: 0, gid: 990 }, { uid: 990 }, { uid: 990, gid: 990, chrootBaseDir: 'jail' }, { uid: 990, gid: 990, chrootBaseDir: '/a\nb' }, 'yes']) {
      writeFileSync(file, JSON.stringify({ firecracker: { jailer: bad } }));
      assert.throws(() => loadControllerConfig({ env }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT') && /firecracker\.jailer/.test(e.message), JSON.stringify(bad));
    }
  });
});
