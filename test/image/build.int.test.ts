// Builds (or reuses from the machine's cache) the real desktop image: ~7 min cold on 2 cores, seconds when cached.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { isHangarError } from '../../src/errors.js';
import { buildImage, type BuildResult } from '../../src/image/build.js';
import { sha256File } from '../../src/image/host.js';
import { configureKernel, kernelSourceVersion, publishKernelArtifact, treeIsUnpacked } from '../../src/image/kernel.js';
import { cacheLayout, FORBIDDEN_PACKAGES } from '../../src/image/plan.js';
import { acquireLock } from '../../src/image/store.js';
import { resolvePaths } from '../../src/config.js';
import { lintKernel, VMMS } from '../../src/kernel/lint.js';
import { createProgress, progressModeFromEnv, silentProgress } from '../../src/util/progress.js';
import { ROOT, skipUnlessRoot } from '../support/env.js';

const skip = skipUnlessRoot();
let image: BuildResult | undefined;

test('desktop image: built or reused; the manifest matches the files', { skip, timeout: 45 * 60_000 }, async () => {
  image = await buildImage({ profile: 'desktop', progress: createProgress(progressModeFromEnv()) });
  const m = image.manifest;
  for (const [name, path] of [['vmlinux', image.kernelPath], ['rootfs.ext4', image.rootfsPath]] as const) {
    assert.equal(await sha256File(path), m.files[name]!.sha256, `${name} sha256`);
    assert.equal((await stat(path)).size, m.files[name]!.size, `${name} size`);
  }
  assert.match(m.kernel.version, /^6\.1\./);
  assert.match(m.kernel.configSha256, /^[0-9a-f]{64}$/);
  const names = m.rootfs.packages.map((p) => p.name);
  for (const p of ['xvfb', 'x11vnc', 'twm', 'xterm', 'iproute2']) assert.ok(names.includes(p), p);
  for (const p of FORBIDDEN_PACKAGES) assert.ok(!names.includes(p), `${p} must not be in the image`);
  assert.ok(m.rootfs.packages.every((p) => p.version.length > 0));
  assert.ok(Object.keys(m.durationsMs.kernel).length >= 3 && Object.keys(m.durationsMs.rootfs).length >= 4, 'per-step durations');
  assert.equal(m.inputs.kernelKey.length, 64);
});

test('unchanged inputs: a second build is a no-op in under 2 s', { skip }, async (t) => {
  if (!image) return t.skip('the build above did not produce an image');
  const t0 = performance.now();
  const again = await buildImage({ profile: 'desktop' });
  const ms = performance.now() - t0;
  assert.equal(again.cached, true);
  assert.equal(again.id, image!.id);
  assert.ok(ms < 2000, `no-op took ${ms.toFixed(0)} ms`);
});

test('the built vmlinux passes the kernel lint for both VMMs (read from its embedded config)', { skip }, async (t) => {
  if (!image) return t.skip('the build above did not produce an image');
  for (const vmm of VMMS) {
    const r = await lintKernel(image!.kernelPath, { vmm, initrd: false, ipBoot: true });
    assert.equal(r.kernel.source, 'ikconfig');
    assert.equal(r.kernel.pvh, true);
    assert.ok(r.ok, `${vmm}: ${r.findings.filter((f) => f.severity === 'error').map((f) => f.code).join(', ')}`);
  }
});

/**
 * The real vmlinux with its embedded config swapped for one without VIRTIO_BLK (same length: the blob is
 * recompressed without comment lines and padded), so the publish step sees a kernel the lint must reject.
 */
function withoutVirtioBlk(vmlinux: Buffer): { image: Buffer; config: string } {
  const st = vmlinux.indexOf('IKCFG_ST') + 8;
  const ed = vmlinux.indexOf('IKCFG_ED', st);
  const config = gunzipSync(vmlinux.subarray(st, ed)).toString()
    .split('\n').filter((l) => l !== 'CONFIG_VIRTIO_BLK=y' && !(l.startsWith('#') && !l.endsWith(' is not set')) && l !== '').join('\n') + '\n';
  const z = gzipSync(config, { level: 9 });
  assert.ok(z.length <= ed - st, 'the smaller config fits in place');
  const out = Buffer.from(vmlinux);
  out.fill(0, st, ed);
  z.copy(out, st);
  return { image: out, config };
}

test('a kernel the lint rejects (no VIRTIO_BLK) is not published', { skip }, async (t) => {
  if (!image) return t.skip('the build above did not produce an image');
  const dir = await mkdtemp(join(tmpdir(), 'hangar-badkernel-'));
  try {
    const bad = withoutVirtioBlk(await readFile(image!.kernelPath));
    const vmlinux = join(dir, 'vmlinux');
    await writeFile(vmlinux, bad.image);
    const artifactDir = join(dir, 'artifacts', 'bad');
    await assert.rejects(
      publishKernelArtifact({ vmlinux, config: bad.config, release: image!.kernelVersion, key: 'bad', inputs: image!.manifest.inputs.kernel, artifactDir, durationsMs: {}, incremental: false }),
      (e) => isHangarError(e, 'KERNEL_LINT_FAILED')
        && (e.details.failures as { vmm: string; findings: { option: string | null }[] }[]).map((f) => f.vmm).sort().join() === 'firecracker,qemu-microvm'
        && /VIRTIO_BLK/.test(e.message),
    );
    await assert.rejects(stat(artifactDir), 'nothing published');
    assert.deepEqual(await readdir(join(dir, 'artifacts')), [], 'no staging left');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('SIGTERM during a build: children stopped, nothing published, no staging or lock left', { skip, timeout: 120_000 }, async () => {
  const cache = await mkdtemp(join(tmpdir(), 'hangar-interrupt-'));
  try {
    const child = spawn(process.execPath, [join(ROOT, 'bin/hangar.js'), 'image', 'build'], {
      env: { ...process.env, HANGAR_CACHE_DIR: cache, HANGAR_QUIET: '' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    const exited = new Promise<number | null>((res) => child.on('close', (code) => res(code)));
    await new Promise<void>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`build never reached the kernel unpack: ${err}`)), 60_000);
      child.stderr.on('data', (c: Buffer) => {
        err += c.toString();
        if (/unpacking/.test(err)) { clearTimeout(t); res(); }
      });
    });
    await new Promise((r) => setTimeout(r, 1500)); // tar is writing
    child.kill('SIGTERM');
    const code = await exited;
    assert.notEqual(code, 0);
    assert.match(err, /CANCELLED/);
    const tree = join(cache, 'kernel', 'tree');
    assert.deepEqual(await readdir(tree), [], 'no unpacked tree, no staging');
    assert.deepEqual(await readdir(join(cache, 'locks')), [], 'locks released');
    assert.deepEqual(await readdir(join(cache, 'images')).catch(() => []), []);
    const ps = await new Promise<string>((res) => {
      const p = spawn('pgrep', ['-af', cache]);
      let o = '';
      p.stdout.on('data', (c: Buffer) => { o += c.toString(); });
      p.on('close', () => res(o));
    });
    assert.equal(ps.trim(), '', 'no process of the build left');
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
});

test('configure: a requested option whose dependency is off is named in KERNEL_OPTION_DROPPED', { skip, timeout: 5 * 60_000 }, async (t) => {
  const version = await kernelSourceVersion('linux-source-6.1');
  const layout = cacheLayout(resolvePaths().cacheDir);
  const tree = layout.kernelTree(version);
  if (!(await treeIsUnpacked(tree))) return t.skip('no kernel build tree in the cache yet');
  // The tree is shared with image builds: take its lock like a build does (the next kernel build reconfigures it).
  let release: () => Promise<void>;
  try {
    release = await acquireLock(join(layout.locks, `kernel-tree-${version}.lock`), 'kernel tree (configure test)');
  } catch (e) {
    if (isHangarError(e, 'IMAGE_BUILD_LOCKED')) return t.skip('an image build holds the kernel tree');
    throw e;
  }
  const dir = await mkdtemp(join(tmpdir(), 'hangar-frag-'));
  try {
    const frag = join(dir, 'bad.config');
    // VIRTIO_BLK needs BLK_DEV: asking for both "VIRTIO_BLK=y" and "BLK_DEV off" cannot survive olddefconfig.
    await writeFile(frag, (await readFile(join(ROOT, 'src/image/kernel-fragments/base.config'), 'utf8')).replace('CONFIG_BLK_DEV=y', '# CONFIG_BLK_DEV is not set'));
    await assert.rejects(configureKernel(tree, [frag], { progress: silentProgress }), (e) => isHangarError(e, 'KERNEL_OPTION_DROPPED')
      && /CONFIG_VIRTIO_BLK=y \(got n\)/.test(e.message));
  } finally {
    await release();
    await rm(dir, { recursive: true, force: true });
  }
});
