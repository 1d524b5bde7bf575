import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { resolvePaths } from '../../src/config.js';
import { isHangarError } from '../../src/errors.js';
import { optionValue } from '../../src/kernel/config.js';
import { compressionOf, identifyKernel, readKernel, type Compression } from '../../src/kernel/image-reader.js';
import { lintImage } from '../../src/kernel/lint.js';
import { which } from '../../src/util/exec.js';
import { GOOD_CONFIG, compressPayload, makeBzImage, makeElf } from './fixtures.js';

const unreadable = (e: unknown): boolean => isHangarError(e, 'KERNEL_UNREADABLE');

async function withFile<T>(name: string, data: Buffer | string, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-kernel-test-'));
  try {
    const p = join(dir, name);
    await writeFile(p, data);
    return await fn(p);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a plain .config is read as format config', async () => {
  const k = await withFile('.config', GOOD_CONFIG, readKernel);
  assert.equal(k.format, 'config');
  assert.equal(k.source, 'config');
  assert.equal(k.config?.version, '6.1.99');
  assert.equal(k.pvh, null);
  assert.equal(k.bannerVersion, null);
});

test('a gzip config.gz (as /proc/config.gz) is inflated', async () => {
  const k = await withFile('config.gz', gzipSync(GOOD_CONFIG), readKernel);
  assert.equal(k.format, 'config.gz');
  assert.equal(k.source, 'config');
  assert.equal(optionValue(k.config!, 'VIRTIO_MMIO_CMDLINE_DEVICES'), 'y');
});

test('ELF vmlinux: PVH note, IKCONFIG blob and version banner are found', async () => {
  const k = await identifyKernel('vmlinux', makeElf({ pvh: true, ikconfig: GOOD_CONFIG, banner: '6.1.99-hangar' }));
  assert.equal(k.format, 'elf');
  assert.equal(k.source, 'ikconfig');
  assert.equal(k.pvh, true);
  assert.equal(k.elfMachine, 62);
  assert.equal(k.bannerVersion, '6.1.99-hangar');
  assert.equal(k.config?.version, '6.1.99');
  assert.equal(optionValue(k.config!, 'SERIAL_8250_CONSOLE'), 'y');
});

test('ELF notes are also found through section headers, and other Xen notes do not count as PVH', async () => {
  assert.equal((await identifyKernel('v', makeElf({ pvh: true, notesInSection: true, ikconfig: GOOD_CONFIG }))).pvh, true);
  assert.equal((await identifyKernel('v', makeElf({ pvh: false, ikconfig: GOOD_CONFIG }))).pvh, false);
});

test('a decoy IKCFG_ST string is skipped for the marker followed by gzip data', async () => {
  const k = await identifyKernel('v', makeElf({ pvh: true, ikconfig: GOOD_CONFIG, decoy: true }));
  assert.equal(k.config?.version, '6.1.99');
});

test('an ELF without IKCONFIG gives a clear finding, not a crash', async () => {
  const k = await identifyKernel('vmlinux', makeElf({ pvh: false, ikconfig: null, banner: '6.1.99' }));
  assert.equal(k.config, null);
  const fc = lintImage(k, { vmm: 'firecracker' });
  assert.equal(fc.ok, false);
  assert.deepEqual(fc.findings.filter((f) => f.severity === 'error').map((f) => f.code), ['KL_NO_IKCONFIG']);
  assert.equal(fc.kernel.version, '6.1.99', 'the banner still dates the kernel');
  const qemu = lintImage(k, { vmm: 'qemu-microvm' });
  assert.deepEqual(qemu.findings.filter((f) => f.severity === 'error').map((f) => f.code).sort(), ['KL_NO_IKCONFIG', 'KL_QEMU_ELF_NO_PVH']);
});

test('a truncated IKCONFIG blob or ELF header is KERNEL_UNREADABLE', async () => {
  await assert.rejects(identifyKernel('v', makeElf({ ikconfig: GOOD_CONFIG, noEndMarker: true })), unreadable);
  await assert.rejects(identifyKernel('v', makeElf({ ikconfig: GOOD_CONFIG }).subarray(0, 40)), unreadable);
  const elf32 = makeElf({ ikconfig: GOOD_CONFIG });
  elf32[4] = 1;
  await assert.rejects(identifyKernel('v', elf32), /not ELF64/);
});

test('a non-x86_64 ELF is read and flagged by the lint', async () => {
  const k = await identifyKernel('v', makeElf({ machine: 183, pvh: true, ikconfig: GOOD_CONFIG }));
  assert.equal(k.elfMachine, 183);
  assert.ok(lintImage(k, { vmm: 'firecracker' }).findings.some((f) => f.code === 'KL_IMAGE_NOT_X86_64'));
});

const COMPRESSIONS: [Compression, string][] = [['gzip', ''], ['xz', 'xz'], ['lzma', 'xz'], ['zstd', 'zstd'], ['lz4', 'lz4'], ['bzip2', 'bzip2'], ['lzo', 'lzop']];
for (const [compression, tool] of COMPRESSIONS) {
  test(`bzImage with a ${compression} payload: found by magic, decompressed, IKCONFIG read`, async (t) => {
    if (tool && !(await which(tool))) return t.skip(`${tool} is not installed (needed to build and read a ${compression} bzImage)`);
    const payload = await compressPayload(makeElf({ pvh: true, ikconfig: GOOD_CONFIG, banner: '6.1.99-hangar' }), compression);
    assert.equal(compressionOf(payload, 0), compression);
    const k = await withFile('bzImage', makeBzImage(payload), readKernel);
    assert.equal(k.format, 'bzimage');
    assert.equal(k.compression, compression);
    assert.equal(k.source, 'ikconfig');
    assert.equal(k.config?.version, '6.1.99');
    assert.equal(k.bannerVersion, '6.1.99-hangar');
    assert.equal(k.pvh, null, 'a VMM never sees the notes inside a bzImage');
  });
}

test('bzImage: version from the setup header when the payload has no banner; setup_sects 0 means 4', async () => {
  const payload = await compressPayload(makeElf({ ikconfig: null, banner: null }), 'gzip');
  const k = await identifyKernel('bz', makeBzImage(payload, { version: '6.1.0-13-amd64 (debian-kernel@lists.debian.org) #1 SMP', setupSects: 0 }));
  assert.equal(k.bannerVersion, '6.1.0-13-amd64');
  assert.equal(k.config, null);
  const r = lintImage(k, { vmm: 'firecracker' });
  assert.deepEqual(r.findings.filter((f) => f.severity === 'error').map((f) => f.code).sort(), ['KL_FC_BZIMAGE', 'KL_NO_IKCONFIG']);
  assert.match(r.findings.find((f) => f.code === 'KL_NO_IKCONFIG')!.fix, /\/boot\/config-6\.1\.0-13-amd64/);
});

test('broken bzImages are KERNEL_UNREADABLE', async () => {
  const payload = await compressPayload(makeElf({ ikconfig: GOOD_CONFIG }), 'gzip');
  const bz = makeBzImage(payload);
  await assert.rejects(identifyKernel('bz', bz.subarray(0, bz.length - payload.length)), /past the end/);
  const corrupt = Buffer.from(bz);
  corrupt.fill(0x41, 5 * 512 + 0x100 + 20, 5 * 512 + 0x100 + 200);
  await assert.rejects(identifyKernel('bz', corrupt), unreadable);
  const noMagic = Buffer.from(bz);
  noMagic.fill(0, 5 * 512 + 0x100, 5 * 512 + 0x100 + 8);
  await assert.rejects(identifyKernel('bz', noMagic), /no known compression magic/);
  const notElf = makeBzImage(gzipSync(Buffer.from('not a kernel')));
  await assert.rejects(identifyKernel('bz', notElf), /not an ELF vmlinux/);
  const oldProtocol = Buffer.from(bz);
  oldProtocol.writeUInt16LE(0x0206, 0x206);
  await assert.rejects(identifyKernel('bz', oldProtocol), /predates payload_offset/);
});

test('unreadable inputs are KERNEL_UNREADABLE with a reason', async () => {
  await assert.rejects(readKernel('/nonexistent/vmlinux'), (e) => unreadable(e) && /ENOENT/.test((e as Error).message));
  await assert.rejects(readKernel(tmpdir()), /not a regular file/);
  await assert.rejects(withFile('empty', '', readKernel), /empty file/);
  await assert.rejects(withFile('junk', Buffer.from([0xde, 0xad, 0xbe, 0xef, 1, 2, 3]), readKernel), /not a kernel \.config/);
  await assert.rejects(withFile('text', 'hello world\n', readKernel), unreadable);
  await assert.rejects(withFile('bad.gz', Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3]), readKernel), /gzip data is corrupt/);
  await assert.rejects(withFile('notconfig.gz', gzipSync('just text\n'), readKernel), /does not contain a kernel config/);
  await assert.rejects(withFile('config.xz', await compressPayload(Buffer.from(GOOD_CONFIG), 'xz'), readKernel), /xz-compressed file: decompress it first/);
});

// ---- real kernels, when this host has them

function newest(paths: string[]): string | null {
  const existing = paths.filter((p) => existsSync(p));
  existing.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return existing[0] ?? null;
}

function realBzImage(): string | null {
  if (process.env.HANGAR_TEST_BZIMAGE) return process.env.HANGAR_TEST_BZIMAGE;
  const boot = existsSync('/boot') ? readdirSync('/boot').filter((f) => f.startsWith('vmlinuz-')).map((f) => join('/boot', f)) : [];
  return newest(boot);
}

function realVmlinux(): string | null {
  if (process.env.HANGAR_TEST_VMLINUX) return process.env.HANGAR_TEST_VMLINUX;
  const dir = resolvePaths().imagesDir;
  // Published images only: a build running beside the tests (the main job's) stages a half-written one under .staging-*.
  const found = existsSync(dir) ? readdirSync(dir).filter((d) => !d.startsWith('.')).map((d) => join(dir, d, 'vmlinux')) : [];
  return newest(found);
}

const bz = realBzImage();
test('a real Debian bzImage is read: payload decompressed, version found', {
  skip: bz ? false : 'no /boot/vmlinuz-* on this host and HANGAR_TEST_BZIMAGE is unset',
}, async () => {
  const k = await readKernel(bz!);
  assert.equal(k.format, 'bzimage');
  assert.ok(k.compression, 'payload compression identified');
  assert.equal(k.elfMachine, 62);
  assert.match(k.bannerVersion ?? '', /^\d+\.\d+/);
  // Debian does not build IKCONFIG in; either way the lint explains instead of crashing.
  const r = lintImage(k, { vmm: 'firecracker' });
  assert.ok(r.findings.some((f) => f.code === 'KL_FC_BZIMAGE'));
  if (k.config === null) assert.ok(r.findings.some((f) => f.code === 'KL_NO_IKCONFIG'));
});

const vmlinux = realVmlinux();
test("the image pipeline's vmlinux is an ELF with the PVH note and an IKCONFIG that passes the lint", {
  skip: vmlinux ? false : `no vmlinux under ${resolvePaths().imagesDir}/*/ and HANGAR_TEST_VMLINUX is unset (build an image first)`,
}, async () => {
  const k = await readKernel(vmlinux!);
  assert.equal(k.format, 'elf');
  assert.equal(k.elfMachine, 62);
  assert.equal(k.pvh, true);
  assert.ok(k.config, 'IKCONFIG present');
  assert.match(k.bannerVersion ?? '', /^\d+\.\d+/);
  for (const vmm of ['firecracker', 'qemu-microvm'] as const) {
    const r = lintImage(k, { vmm });
    assert.equal(r.ok, true, `${vmm}: ${JSON.stringify(r.findings.filter((f) => f.severity === 'error'))}`);
  }
});
