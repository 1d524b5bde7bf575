// The controller's configuration, normalised once (src/api/config.ts): defaults, the file, overrides; bad values
// refused with INVALID_ARGUMENT naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadControllerConfig } from '../../src/api/config.js';
import { isHangarError } from '../../src/errors.js';
import { DEFAULT_LIMITS } from '../../src/vm/input.js';

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

test('limits: defaults, configured ranges, and a clear error for what a VMM driver would refuse', () => {
  withStateDir((dir, env) => {
    assert.deepEqual(loadControllerConfig({ env }).limits, DEFAULT_LIMITS);
    assert.deepEqual(DEFAULT_LIMITS, { vcpus: { min: 1, max: 8 }, memMiB: { min: 128, max: 16384 }, ttlSeconds: { min: 60, max: 604800 }, name: { maxLength: 63 } });
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ limits: { vcpus: { max: 32 }, memMiB: { min: 256, max: 65536 }, name: { maxLength: 20 } } }));
    assert.deepEqual(loadControllerConfig({ env }).limits, { vcpus: { min: 1, max: 32 }, memMiB: { min: 256, max: 65536 }, ttlSeconds: DEFAULT_LIMITS.ttlSeconds, name: { maxLength: 20 } });
    const refused: [unknown, string, RegExp][] = [
      [{ vcpus: { max: 33 } }, 'limits.vcpus.max', /limits\.vcpus\.max is 33, but the firecracker driver accepts at most 32 vCPUs/],
      [{ vcpus: { max: 65 } }, 'limits.vcpus.max', /qemu driver accepts at most 64 vCPUs/],
      [{ memMiB: { min: 32 } }, 'limits.memMiB.min', /qemu driver needs at least 64 MiB/],
      [{ memMiB: { max: 2 * 1024 * 1024 } }, 'limits.memMiB.max', /accepts at most 1048576 MiB/],
      [{ vcpus: { min: 4, max: 2 } }, 'limits.vcpus.min', /must not exceed limits\.vcpus\.max/],
      [{ vcpus: { min: 0 } }, 'limits.vcpus.min', /driver needs at least 1 vCPUs/],
      [{ ttlSeconds: { max: 10 * 366 * 86400 } }, 'limits.ttlSeconds.max', /integer from 1 to/],
      [{ name: { maxLength: 64 } }, 'limits.name.maxLength', /integer from 1 to 63/],
      [{ vcpu: { max: 2 } }, 'limits.vcpu', /is not a limit/],
      [{ vcpus: 8 }, 'limits.vcpus', /must be an object/],
      ['lots', 'limits', /must be an object/],
    ];
    for (const [limits, field, message] of refused) {
      writeFileSync(file, JSON.stringify({ limits }));
      assert.throws(() => loadControllerConfig({ env }), (e: unknown) => isHangarError(e) && e.details.field === field && message.test(e.message), JSON.stringify(limits));
    }
  });
});

test('stream caps and the console cap: defaults, configured values, unknown keys and ranges refused', () => {
  withStateDir((dir, env) => {
    const d = loadControllerConfig({ env });
    assert.deepEqual(d.streams, { maxClients: 64, maxPerKey: 32, maxBufferedBytes: 1024 * 1024, stallMs: 60_000 });
    assert.equal(d.consoleMaxBytes, 64 * 1024 * 1024);
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ streams: { maxClients: 4, maxPerKey: 2 }, consoleMaxBytes: 2 * 1024 * 1024 }));
    const c = loadControllerConfig({ env });
    assert.deepEqual(c.streams, { maxClients: 4, maxPerKey: 2, maxBufferedBytes: 1024 * 1024, stallMs: 60_000 });
    assert.equal(c.consoleMaxBytes, 2 * 1024 * 1024);
    for (const [bad, field] of [[{ streams: { maxClients: 0 } }, 'streams.maxClients'], [{ streams: { maxBufered: 1 } }, 'streams.maxBufered'], [{ streams: 5 }, 'streams'], [{ consoleMaxBytes: 100 }, 'consoleMaxBytes']] as const) {
      writeFileSync(file, JSON.stringify(bad));
      assert.throws(() => loadControllerConfig({ env }), (e: unknown) => (isHangarError(e, 'INVALID_ARGUMENT') || isHangarError(e, 'UNKNOWN_FIELD')) && e.details.field === field, JSON.stringify(bad));
    }
  });
});

test('vmm confinement: the hangar-vmm user and cgroups by default; a user name, null or limits, each checked', () => {
  const none = mkdtempSync(join(tmpdir(), 'hangar-cfg-'));
  try {
    const env = { HANGAR_STATE_DIR: none, HANGAR_CACHE_DIR: none };
    const d = loadControllerConfig({ env }).vmm;
    assert.equal(d.user, 'hangar-vmm');
    assert.equal(d.cgroups, true);
    assert.deepEqual(d.resources, { cpuPerVcpu: 1, overheadMiB: 256, swapMiB: 0, pids: 512, io: {} });
    const c = loadControllerConfig({ env, overrides: { vmm: { user: null, cgroups: false, resources: { overheadMiB: 128, io: { writeBps: 1000000 } } } } }).vmm;
    assert.equal(c.user, null);
    assert.equal(c.cgroups, false);
    assert.equal(c.resources.overheadMiB, 128);
    assert.deepEqual(c.resources.io, { writeBps: 1000000 });
    const bad = (vmm: unknown, field: string): void => {
      assert.throws(() => loadControllerConfig({ env, overrides: { vmm } as never }), (e: unknown) => (isHangarError(e, 'INVALID_ARGUMENT') || isHangarError(e, 'UNKNOWN_FIELD')) && `${(e as Error).message} ${JSON.stringify(e)}`.includes(field));
    };
    bad({ user: 'root; rm -rf /' }, 'vmm.user');
    bad({ cgroups: 'yes' }, 'vmm.cgroups');
    bad({ resources: { pids: 1 } }, 'vmm.resources.pids');
    bad({ resources: { cpuPerVcpu: 0 } }, 'vmm.resources.cpuPerVcpu');
    bad({ resources: { io: { weight: 5 } } }, 'vmm.resources.io.weight');
    bad({ sandbox: false }, 'vmm.sandbox');
  } finally {
    rmSync(none, { recursive: true, force: true });
  }
});
