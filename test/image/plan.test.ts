import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GUEST_INIT_PATH, INIT_MARKER, READY_MARKER, VNC_PORT } from '../../src/guest-protocol.js';
import { planImageBuild, planWork, readImageData, type GatheredInputs } from '../../src/image/build.js';
import {
  buildManifest, cacheKey, canonicalJson, debootstrapArgv, droppedOptions, FORBIDDEN_PACKAGES, guestFileDest, imageId, kernelInputs, lockRootShadow,
  mkfsArgv, packagesForMissing, parseDpkgQuery, planRootfsSize, profilePackages, renderGuestTemplate, rootfsInputs, uuidFromKey,
  type KernelArtifactMeta, type RootfsArtifactMeta,
} from '../../src/image/plan.js';
import { debootstrapFailure } from '../../src/image/rootfs.js';
import { ROOT } from '../support/env.js';

const FRAG = { name: 'base.config', content: 'CONFIG_VIRTIO_BLK=y\nCONFIG_PVH=y\n# CONFIG_PCI is not set\n' };
const INIT = { name: 'hangar-init', content: '#!/bin/bash\necho HANGAR-INIT\n' };
const paths = { stateDir: '/s', cacheDir: '/c', imagesDir: '/c/images', snapshotsDir: '/c/snapshots' };
const inputs = (over: Partial<GatheredInputs> = {}): GatheredInputs => ({
  sourceVersion: '6.1.192-2', fragments: [{ ...FRAG, path: '/f/base.config' }], guestFiles: [INIT], ...over,
});

test('fragment change: kernel key changes, rootfs key does not, image id changes', () => {
  const a = planImageBuild('desktop', inputs(), paths);
  const b = planImageBuild('desktop', inputs({ fragments: [{ ...FRAG, path: '/f/base.config', content: FRAG.content + 'CONFIG_IPV6=y\n' }] }), paths);
  assert.notEqual(a.kernelKey, b.kernelKey);
  assert.equal(a.rootfsKey, b.rootfsKey);
  assert.equal(a.rootfsArtifactDir, b.rootfsArtifactDir, 'the rootfs artifact is reused');
  assert.notEqual(a.id, b.id);
  assert.equal(a.kernelTree, b.kernelTree, 'the kernel build tree is shared, so an option change rebuilds incrementally');
});

test('kernel key follows the source package version and recipe; rootfs key follows packages and guest files', () => {
  const a = planImageBuild('desktop', inputs(), paths);
  const newSrc = planImageBuild('desktop', inputs({ sourceVersion: '6.1.200-1' }), paths);
  assert.notEqual(a.kernelKey, newSrc.kernelKey);
  assert.equal(a.rootfsKey, newSrc.rootfsKey);
  assert.notEqual(a.kernelTree, newSrc.kernelTree);
  const newInit = planImageBuild('desktop', inputs({ guestFiles: [{ ...INIT, content: INIT.content + 'true\n' }] }), paths);
  assert.equal(a.kernelKey, newInit.kernelKey);
  assert.notEqual(a.rootfsKey, newInit.rootfsKey);
  const browser = planImageBuild('browser', inputs(), paths);
  assert.equal(a.kernelKey, browser.kernelKey, 'one kernel serves both profiles');
  assert.notEqual(a.rootfsKey, browser.rootfsKey);
  assert.ok(browser.id.startsWith('browser-'));
  // Same inputs, same keys (a fresh clone on the same host reuses the cache).
  const same = planImageBuild('desktop', inputs(), { ...paths });
  assert.deepEqual([same.kernelKey, same.rootfsKey, same.id, same.imageDir], [a.kernelKey, a.rootfsKey, a.id, a.imageDir]);
});

test('keys do not depend on property order; the mirror host is not an input', () => {
  assert.equal(canonicalJson({ b: 1, a: [1, { d: 2, c: 3 }] }), '{"a":[1,{"c":3,"d":2}],"b":1}');
  const r = rootfsInputs('desktop', [INIT]);
  assert.ok(!JSON.stringify(r).includes('http'));
  assert.equal(cacheKey(kernelInputs('1', [FRAG])), cacheKey(kernelInputs('1', [{ ...FRAG }])));
  assert.match(imageId('desktop', 'a'.repeat(64), 'b'.repeat(64)), /^desktop-[0-9a-f]{12}$/);
});

test('work plan: cached image is a no-op; missing artifacts are built; force builds both', () => {
  assert.deepEqual(planWork({ image: true, kernel: true, rootfs: true }), { noop: true, buildKernel: false, buildRootfs: false });
  assert.deepEqual(planWork({ image: false, kernel: false, rootfs: true }), { noop: false, buildKernel: true, buildRootfs: false });
  assert.deepEqual(planWork({ image: false, kernel: true, rootfs: false }), { noop: false, buildKernel: false, buildRootfs: true });
  assert.deepEqual(planWork({ image: true, kernel: true, rootfs: true }, true), { noop: false, buildKernel: true, buildRootfs: true });
});

test('dropped options: requested values that did not survive, absent reads as n', () => {
  const final = 'CONFIG_VIRTIO_BLK=y\nCONFIG_PVH=m\n# CONFIG_PCI is not set\n';
  assert.deepEqual(droppedOptions([FRAG.content], final), [{ option: 'CONFIG_PVH', requested: 'y', actual: 'm' }]);
  assert.deepEqual(droppedOptions(['CONFIG_IKCONFIG=y\n## comment\n'], final), [{ option: 'CONFIG_IKCONFIG', requested: 'y', actual: 'n' }]);
  assert.deepEqual(droppedOptions(['# CONFIG_MODULES is not set\n'], final), []);
});

test('debootstrap argv: minbase, main, the profile packages, a deb cache, suite target mirror last', () => {
  const argv = debootstrapArgv({ suite: 'bookworm', mirror: 'http://mirror.example.test/debian', target: '/st/root', packages: profilePackages('desktop'), debCache: '/c/debs' });
  assert.deepEqual(argv.slice(0, 2), ['--variant=minbase', '--components=main']);
  assert.deepEqual(argv.slice(-3), ['bookworm', '/st/root', 'http://mirror.example.test/debian']);
  const include = argv.find((a) => a.startsWith('--include='))!.slice('--include='.length).split(',');
  for (const p of ['xvfb', 'twm', 'xterm', 'x11vnc', 'iproute2']) assert.ok(include.includes(p), p);
  assert.ok(!include.includes('chromium'));
  assert.ok(profilePackages('browser').includes('chromium'));
  for (const p of FORBIDDEN_PACKAGES) assert.ok(!profilePackages('browser').includes(p), p);
  assert.ok(argv.includes('--cache-dir=/c/debs'));
});

test('rootfs size: content plus headroom, 64 MiB granularity; mkfs argv uses -d and no loop mount', () => {
  const MiB = 2 ** 20;
  const s = planRootfsSize({ allocatedBytes: 400 * MiB, files: 20000 });
  assert.equal(s.sizeBytes % (64 * MiB), 0);
  assert.ok(s.sizeBytes >= 400 * MiB * 1.25 + 256 * MiB);
  assert.ok(s.inodes >= 20000 * 1.5);
  assert.ok(planRootfsSize({ allocatedBytes: 800 * MiB, files: 1 }).sizeBytes > s.sizeBytes);
  const argv = mkfsArgv({ sourceDir: '/st/root', out: '/st/rootfs.ext4', size: s, label: 'hangar-root', uuid: uuidFromKey('k') });
  assert.deepEqual(argv.slice(-4), ['-d', '/st/root', '/st/rootfs.ext4', `${s.sizeBytes / MiB}M`]);
  assert.ok(argv.includes('-F') && argv.includes('-q'));
  assert.equal(argv[argv.indexOf('-N') + 1], String(s.inodes));
  assert.match(uuidFromKey('k'), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(uuidFromKey('k'), uuidFromKey('k'));
});

test('guest templates take the markers from guest-protocol.ts; unknown placeholders fail', async () => {
  const out = renderGuestTemplate('@INIT_MARKER@ @READY_MARKER@ @VNC_PORT@ @GUEST_INIT_PATH@');
  assert.equal(out, `${INIT_MARKER} ${READY_MARKER} ${VNC_PORT} ${GUEST_INIT_PATH}`);
  assert.throws(() => renderGuestTemplate('@NOPE@'), /unknown placeholder/);
  // The real init renders and keeps its promises: markers, HANGAR-NET, hooks, no -localhost, no baked password.
  const { guestFiles, fragments } = await readImageData(join(ROOT, 'src/image'));
  const init = guestFiles.find((f) => f.name === 'hangar-init')!.content;
  assert.ok(init.includes(`echo "${INIT_MARKER}`) && init.includes(`echo "${READY_MARKER}`));
  assert.ok(init.includes('HANGAR-NET eth0'));
  assert.ok(init.includes('/etc/hangar/init.d/*.sh'));
  assert.ok(init.indexOf('/etc/hangar/init.d') < init.indexOf(`echo "${READY_MARKER}`), 'hooks run before READY');
  assert.ok(!/x11vnc[^\n]*-localhost/.test(init));
  assert.ok(/x11vnc[^\n]*-rfbport 5900/.test(init));
  assert.ok(/Xvfb[^\n]*-nolisten tcp/.test(init));
  assert.ok(!/passwd|chpasswd/.test(init));
  // twm places windows itself and never grabs the server, not even to move a window (a grab freezes what VNC viewers
  // see, and x11vnc with them: bench/desktop-safety).
  const twmrc = guestFiles.find((f) => f.name === 'twmrc')!.content;
  assert.ok(/^RandomPlacement$/m.test(twmrc) && /^NoGrabServer$/m.test(twmrc) && /^OpaqueMove$/m.test(twmrc));
  assert.ok(init.includes('twm -f /etc/hangar/twmrc'));
  // The fragment asks for what the recipe needs for both VMMs.
  const frag = fragments.map((f) => f.content).join('\n');
  for (const o of ['CONFIG_PVH=y', 'CONFIG_IKCONFIG=y', 'CONFIG_IKCONFIG_PROC=y', 'CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y', 'CONFIG_VIRTIO_BLK=y', 'CONFIG_IP_PNP=y', '# CONFIG_MODULES is not set']) {
    assert.ok(frag.includes(o), o);
  }
  assert.equal(await readFile(join(ROOT, 'src/image/guest/hangar-init'), 'utf8').then((t) => t.startsWith('#!/bin/bash')), true);
});

test('guest files: the init at GUEST_INIT_PATH, *.sh as init.d snippets, the rest under /etc/hangar', () => {
  assert.deepEqual(guestFileDest('hangar-init'), { path: GUEST_INIT_PATH, mode: 0o755 });
  assert.deepEqual(guestFileDest('resume-agent.sh'), { path: '/etc/hangar/init.d/resume-agent.sh', mode: 0o644 });
  assert.deepEqual(guestFileDest('twmrc'), { path: '/etc/hangar/twmrc', mode: 0o644 });
});

test('root is locked in shadow; other accounts untouched', () => {
  const shadow = 'root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n';
  const locked = lockRootShadow(shadow);
  assert.equal(locked.split('\n')[0], 'root:!*:19000:0:99999:7:::');
  assert.equal(locked.split('\n')[1], 'daemon:*:19000:0:99999:7:::');
  assert.equal(lockRootShadow(locked), locked, 'idempotent');
  assert.equal(lockRootShadow('root::1:0:99999:7:::').split(':')[1], '!*', 'an empty password is locked too');
});

test('dpkg-query output parses to sorted packages', () => {
  assert.deepEqual(parseDpkgQuery('xterm\t379-1\tamd64\nbash\t5.2.15-2+b7\tamd64\n\n'), [
    { name: 'bash', version: '5.2.15-2+b7', arch: 'amd64' }, { name: 'xterm', version: '379-1', arch: 'amd64' },
  ]);
});

test('missing tools map to the Debian packages that provide them', () => {
  assert.deepEqual(packagesForMissing(['make', 'gcc', 'debootstrap', 'mkfs.ext4']), ['build-essential', 'debootstrap', 'e2fsprogs']);
  assert.deepEqual(packagesForMissing(['/usr/include/libelf.h'], { '/usr/include/libelf.h': 'libelf-dev' }), ['libelf-dev']);
});

test('manifest shape: files with sha256 and size, versions, durations, inputs, guest contract', () => {
  const kIn = kernelInputs('6.1.192-2', [FRAG]);
  const rIn = rootfsInputs('desktop', [INIT]);
  const kernel: KernelArtifactMeta = {
    key: cacheKey(kIn), inputs: kIn, release: '6.1.192', configSha256: 'c'.repeat(64), file: { sha256: 'a'.repeat(64), size: 10 },
    builtAt: '2026-01-01T00:00:00.000Z', durationsMs: { compile: 1000 }, lint: { firecracker: { ok: true, errors: 0, warnings: 0 } }, incremental: false,
  };
  const rootfs: RootfsArtifactMeta = {
    key: cacheKey(rIn), inputs: rIn, mirror: 'http://mirror.example.test/debian', packages: [{ name: 'xterm', version: '379-1', arch: 'amd64' }],
    contentBytes: 5, files: 2, file: { sha256: 'b'.repeat(64), size: 20 }, builtAt: '2026-01-01T00:00:00.000Z', durationsMs: { debootstrap: 60000 },
  };
  const m = buildManifest({ id: 'desktop-0123456789ab', profile: 'desktop', created: '2026-01-02T00:00:00.000Z', kernel, rootfs });
  assert.equal(m.schema, 1);
  assert.deepEqual(Object.keys(m.files).sort(), ['rootfs.ext4', 'vmlinux']);
  assert.equal(m.files['vmlinux']!.sha256, 'a'.repeat(64));
  assert.equal(m.kernel.version, '6.1.192');
  assert.equal(m.kernel.configSha256, 'c'.repeat(64));
  assert.equal(m.rootfs.packages[0]!.version, '379-1');
  assert.deepEqual(m.durationsMs.kernel, { compile: 1000 });
  assert.equal(m.inputs.kernelKey, kernel.key);
  assert.equal(m.guest.readyMarker, READY_MARKER);
  assert.match(m.guest.cmdline, /init=\/sbin\/hangar-init/);
  assert.deepEqual(JSON.parse(JSON.stringify(m)), m, 'JSON round-trips');
});

test('a debootstrap failure is summarised from its log', () => {
  const log = 'Setting up a ...\ndpkg: dependency problems prevent configuration of dconf-service:\n dconf-service depends on default-dbus-session-bus | dbus-session-bus; however:\n  Package default-dbus-session-bus is not installed.\nSetting up b\n';
  assert.match(debootstrapFailure(log), /^dpkg: dependency problems prevent configuration of dconf-service: dconf-service depends on default-dbus-session-bus/);
  assert.equal(debootstrapFailure('all fine\n'), '');
});
