import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { isHangarError } from '../../src/errors.js';
import { buildImage, buildSteps, planImageBuild, type GatheredInputs } from '../../src/image/build.js';
import type { HostChecks } from '../../src/image/host.js';
import { lintGate, publishKernelArtifact, type LintFn } from '../../src/image/kernel.js';
import { kernelInputs, rootfsInputs, type KernelArtifactMeta, type RootfsArtifactMeta } from '../../src/image/plan.js';
import { listImages } from '../../src/image/store.js';
import type { HangarPaths } from '../../src/config.js';
import { ROOT } from '../support/env.js';

const inputs: GatheredInputs = {
  sourceVersion: '6.1.192-2',
  fragments: [{ name: 'base.config', path: '/nonexistent/base.config', content: 'CONFIG_VIRTIO_BLK=y\n' }],
  guestFiles: [{ name: 'hangar-init', content: '#!/bin/bash\n' }],
};

const okChecks: HostChecks = { isRoot: () => true, which: async (t) => `/usr/bin/${t}`, freeBytes: async () => 1e12, exists: async () => true };

async function tmpPaths(): Promise<HangarPaths & { root: string }> {
  const root = await mkdtemp(join(tmpdir(), 'hangar-build-'));
  return { root, stateDir: join(root, 'state'), cacheDir: join(root, 'cache'), imagesDir: join(root, 'cache', 'images'), snapshotsDir: join(root, 'cache', 'snapshots') };
}

/** Cached artifacts for INPUTS, as a finished build would leave them (small fake files). */
async function fakeArtifacts(paths: HangarPaths): Promise<void> {
  const plan = planImageBuild('desktop', inputs, paths);
  await mkdir(plan.kernelArtifactDir, { recursive: true });
  await writeFile(join(plan.kernelArtifactDir, 'vmlinux'), 'ELF-ish');
  const k: KernelArtifactMeta = {
    key: plan.kernelKey, inputs: kernelInputs(inputs.sourceVersion, inputs.fragments), release: '6.1.192', configSha256: 'c'.repeat(64),
    file: { sha256: 'a'.repeat(64), size: 7 }, builtAt: 'x', durationsMs: { compile: 1 }, lint: {}, incremental: false,
  };
  await writeFile(join(plan.kernelArtifactDir, 'meta.json'), JSON.stringify(k));
  await mkdir(plan.rootfsArtifactDir, { recursive: true });
  await writeFile(join(plan.rootfsArtifactDir, 'rootfs.ext4'), 'ext4-ish!');
  const r: RootfsArtifactMeta = {
    key: plan.rootfsKey, inputs: rootfsInputs('desktop', inputs.guestFiles), mirror: 'http://mirror.example.test/debian',
    packages: [{ name: 'xterm', version: '1', arch: 'amd64' }], contentBytes: 9, files: 1, file: { sha256: 'b'.repeat(64), size: 9 },
    builtAt: 'x', durationsMs: { debootstrap: 1 },
  };
  await writeFile(join(plan.rootfsArtifactDir, 'meta.json'), JSON.stringify(r));
}

test('preflight: NOT_ROOT, MISSING_HOST_TOOLS naming each tool, NO_DISK_SPACE, all before any change', async () => {
  const paths = await tmpPaths();
  try {
    await assert.rejects(buildImage({ paths, inputs, checks: { ...okChecks, isRoot: () => false } }), (e) => isHangarError(e, 'NOT_ROOT'));
    const missing = new Set(['debootstrap', 'mkfs.ext4']);
    await assert.rejects(
      buildImage({ paths, inputs, checks: { ...okChecks, which: async (t) => (missing.has(t) ? null : `/usr/bin/${t}`), exists: async (p) => !p.endsWith('libelf.h') } }),
      (e) => isHangarError(e, 'MISSING_HOST_TOOLS')
        && JSON.stringify(e.details.tools) === JSON.stringify(['debootstrap', 'mkfs.ext4', '/usr/include/libelf.h'])
        && /debootstrap, mkfs\.ext4/.test(e.message) && /e2fsprogs/.test(e.message) && /libelf-dev/.test(e.message),
    );
    await assert.rejects(buildImage({ paths, inputs, checks: { ...okChecks, freeBytes: async () => 1024 } }), (e) => isHangarError(e, 'NO_DISK_SPACE'));
    await assert.rejects(buildImage({ paths, inputs, checks: okChecks, profile: 'nope' as 'desktop' }), (e) => isHangarError(e, 'INVALID_ARGUMENT'));
    await assert.rejects(stat(paths.cacheDir), 'nothing was created');
  } finally {
    await rm(paths.root, { recursive: true, force: true });
  }
});

test('build steps are named, and only what is missing is built', () => {
  const names = (w: Parameters<typeof buildSteps>[0]): string[] => buildSteps(w).map((s) => s.name);
  const all = names({ noop: false, buildKernel: true, buildRootfs: true });
  assert.deepEqual(all, [
    'lock', 'clean stale staging',
    'kernel: unpack source', 'kernel: configure', 'kernel: compile', 'kernel: verify, lint and publish',
    'rootfs: debootstrap', 'rootfs: customize', 'rootfs: hangar-agent', 'rootfs: slim', 'rootfs: mkfs', 'rootfs: publish',
    'image: publish',
  ]);
  const kernelOnly = names({ noop: false, buildKernel: true, buildRootfs: false });
  assert.ok(!kernelOnly.some((n) => n.startsWith('rootfs:')), 'a fragment change reuses the rootfs artifact');
  assert.deepEqual(names({ noop: false, buildKernel: false, buildRootfs: false }), ['lock', 'clean stale staging', 'image: publish']);
});

test('publishing from cached artifacts: manifest, hard links, stale staging cleaned, then a no-op', async () => {
  const paths = await tmpPaths();
  try {
    await fakeArtifacts(paths);
    // Leftovers of a build that crashed: a half-written image staging directory and a lock of a dead pid.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const stale = join(paths.imagesDir, `.staging-image-desktop-x-${dead}-abcdef`);
    await mkdir(stale, { recursive: true });
    await writeFile(join(stale, 'rootfs.ext4'), 'half');
    const plan = planImageBuild('desktop', inputs, paths);
    await mkdir(plan.layout.locks, { recursive: true });
    await writeFile(join(plan.layout.locks, `image-${plan.id}.lock`), JSON.stringify({ pid: dead }));

    const r = await buildImage({ paths, inputs, checks: okChecks });
    assert.equal(r.cached, false);
    assert.deepEqual(r.built, { kernel: false, rootfs: false });
    assert.equal(r.id, plan.id);
    assert.equal(r.manifest.kernel.version, '6.1.192');
    assert.equal(r.manifest.files['vmlinux']!.size, 7);
    assert.equal(r.manifest.rootfs.packages[0]!.name, 'xterm');
    assert.equal((await stat(r.rootfsPath)).ino, (await stat(join(plan.rootfsArtifactDir, 'rootfs.ext4'))).ino, 'hard link, not a copy');
    assert.deepEqual((await readdir(paths.imagesDir)).sort(), [plan.id], 'stale staging removed');
    assert.deepEqual(await readdir(plan.layout.locks), [], 'locks released');
    const again = await buildImage({ paths, inputs, checks: { ...okChecks, isRoot: () => false } });
    assert.equal(again.cached, true, 'unchanged inputs: no-op (and no root needed for it)');
    assert.deepEqual((await listImages(paths)).map((i) => i.id), [plan.id]);
  } finally {
    await rm(paths.root, { recursive: true, force: true });
  }
});

test('a cancelled build publishes nothing and releases its locks', async () => {
  const paths = await tmpPaths();
  try {
    await fakeArtifacts(paths);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(buildImage({ paths, inputs, checks: okChecks, signal: ac.signal }), (e) => isHangarError(e, 'CANCELLED'));
    assert.deepEqual(await listImages(paths), []);
    assert.deepEqual(await readdir(planImageBuild('desktop', inputs, paths).layout.locks).catch(() => []), []);
  } finally {
    await rm(paths.root, { recursive: true, force: true });
  }
});

/** A minimal ELF64 x86_64 file carrying an IKCONFIG blob the way vmlinux does (markers around a gzip stream). */
function withIkconfig(config: string): Buffer {
  const elf = Buffer.alloc(64);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  elf.writeUInt16LE(62, 18); // EM_X86_64; no program or section headers
  return Buffer.concat([elf, Buffer.from('\0IKCFG_ST'), gzipSync(config), Buffer.from('IKCFG_ED\0')]);
}

test('a kernel the lint rejects is not published (no artifact, no staging left)', async () => {
  const paths = await tmpPaths();
  try {
    const config = 'CONFIG_VIRTIO_BLK=y\n';
    const vmlinux = join(paths.root, 'vmlinux');
    await writeFile(vmlinux, withIkconfig(config));
    const artifactDir = join(paths.cacheDir, 'kernel', 'artifacts', 'k1');
    const rejecting: LintFn = async (_p, o) => ({
      ok: o.vmm !== 'firecracker', kernel: { version: null, source: 'ikconfig', format: 'elf', pvh: true },
      target: {} as never,
      findings: o.vmm === 'firecracker' ? [{ code: 'KL_TEST', severity: 'error', option: 'CONFIG_VIRTIO_BLK', message: 'm', fix: 'f' }] : [],
    });
    const args = { vmlinux, config, release: '6.1.192', key: 'k1', inputs: kernelInputs('1', []), artifactDir, durationsMs: {}, incremental: false };
    await assert.rejects(publishKernelArtifact({ ...args, lint: rejecting }), (e) => isHangarError(e, 'KERNEL_LINT_FAILED') && /firecracker: CONFIG_VIRTIO_BLK/.test(e.message));
    await assert.rejects(stat(artifactDir));
    assert.deepEqual(await readdir(join(artifactDir, '..')), [], 'staging removed');
    // Embedded config must match what was built.
    await assert.rejects(publishKernelArtifact({ ...args, config: 'CONFIG_VIRTIO_BLK=n\n', lint: async () => ({ ok: true, findings: [] }) as never }), (e) => isHangarError(e, 'KERNEL_BUILD_FAILED'));
    // And a file without IKCONFIG cannot be checked, so it is not published either.
    await writeFile(vmlinux, 'no config here');
    await assert.rejects(publishKernelArtifact({ ...args, lint: async () => ({ ok: true, findings: [] }) as never }), (e) => isHangarError(e, 'KERNEL_UNREADABLE'));
    await assert.rejects(stat(artifactDir));
  } finally {
    await rm(paths.root, { recursive: true, force: true });
  }
});

test('the lint gate with the real lint rejects a config without VIRTIO_BLK for both VMMs', async () => {
  const paths = await tmpPaths();
  try {
    const fragment = await readFile(join(ROOT, 'src/image/kernel-fragments/base.config'), 'utf8');
    const bad = join(paths.root, 'bad.config');
    await writeFile(bad, fragment.replace('CONFIG_VIRTIO_BLK=y', '# CONFIG_VIRTIO_BLK is not set'));
    await assert.rejects(lintGate(bad), (e) => isHangarError(e, 'KERNEL_LINT_FAILED')
      && (e.details.failures as { vmm: string; findings: { option: string | null }[] }[]).length === 2
      && (e.details.failures as { findings: { option: string | null }[] }[]).every((f) => f.findings.some((x) => x.option?.includes('VIRTIO_BLK'))));
  } finally {
    await rm(paths.root, { recursive: true, force: true });
  }
});
