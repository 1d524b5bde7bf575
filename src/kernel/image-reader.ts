// Reading a kernel: a .config, a gzip config.gz (/proc/config.gz), an ELF vmlinux or an x86 bzImage. Images carry
// their config only when built with CONFIG_IKCONFIG=y (a gzip blob between the IKCFG_ST/IKCFG_ED markers). The byte
// parsing is pure (Buffer in, facts out); only reading the file and decompressing a non-gzip bzImage payload touch
// the host, the latter through run() with argument arrays.
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { HangarError, isHangarError } from '../errors.js';
import { run } from '../util/exec.js';
import { looksLikeConfig, parseConfig, type KernelConfig } from './config.js';

export type KernelFormat = 'config' | 'config.gz' | 'elf' | 'bzimage';
export type Compression = 'gzip' | 'xz' | 'zstd' | 'lzma' | 'lz4' | 'bzip2' | 'lzo';

export interface KernelImage {
  path: string;
  format: KernelFormat;
  /** Where the config came from: the file itself, or the IKCONFIG blob inside an image. */
  source: 'config' | 'ikconfig';
  /** null when an image carries no IKCONFIG blob. */
  config: KernelConfig | null;
  /** Release from the image's "Linux version ..." banner (or the bzImage header); null for configs. */
  bannerVersion: string | null;
  /** ELF: whether the XEN_ELFNOTE_PHYS32_ENTRY note (PVH entry) is present; null for configs and bzImages. */
  pvh: boolean | null;
  /** ELF e_machine (62 = x86_64); null when not an ELF. */
  elfMachine: number | null;
  /** bzImage payload compression; null otherwise. */
  compression: Compression | null;
}

/** Bigger than any real kernel with debug info; refuses to read a disk image by mistake. */
const MAX_INPUT_BYTES = 1024 * 1024 * 1024;
export const EM_X86_64 = 62;
const PT_NOTE = 4;
const SHT_NOTE = 7;
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

const unreadable = (path: string, why: string, cause?: unknown): HangarError =>
  new HangarError('KERNEL_UNREADABLE', `${path}: ${why}`, { path }, cause === undefined ? undefined : { cause });

/** Reads and identifies a kernel or config file. Throws KERNEL_UNREADABLE for anything it cannot use. */
export async function readKernel(path: string): Promise<KernelImage> {
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw unreadable(path, 'not a regular file');
    size = st.size;
  } catch (e) {
    if (isHangarError(e)) throw e;
    throw unreadable(path, (e as Error).message, e);
  }
  if (size === 0) throw unreadable(path, 'empty file');
  if (size > MAX_INPUT_BYTES) throw unreadable(path, `${size} bytes is larger than any kernel (limit ${MAX_INPUT_BYTES})`);
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw unreadable(path, (e as Error).message, e);
  }
  return identifyKernel(path, buf);
}

/** Identifies a kernel from its bytes; `path` only names it in messages. */
export async function identifyKernel(path: string, buf: Buffer): Promise<KernelImage> {
  if (isElf(buf)) return { path, format: 'elf', compression: null, ...readElf(path, buf) };
  if (isBzImage(buf)) return readBzImage(path, buf);
  if (buf[0] === 0x1f && buf[1] === 0x8b) {
    let text: string;
    try {
      text = gunzipSync(buf).toString('utf8');
    } catch (e) {
      throw unreadable(path, `gzip data is corrupt: ${(e as Error).message}`, e);
    }
    if (!looksLikeConfig(text)) throw unreadable(path, 'gzip file does not contain a kernel config');
    return configImage(path, 'config.gz', text);
  }
  const magic = compressionOf(buf, 0);
  if (magic) throw unreadable(path, `${magic}-compressed file: decompress it first (e.g. ${magic === 'xz' ? 'xz -dk' : `${magic} -dk`} FILE)`);
  const text = buf.toString('utf8');
  if (looksLikeConfig(text)) return configImage(path, 'config', text);
  throw unreadable(path, 'not a kernel .config, config.gz, ELF vmlinux or bzImage');
}

function configImage(path: string, format: 'config' | 'config.gz', text: string): KernelImage {
  return { path, format, source: 'config', config: parseConfig(text), bannerVersion: null, pvh: null, elfMachine: null, compression: null };
}

// ---- ELF

export function isElf(buf: Buffer): boolean {
  return buf.length >= 4 && buf[0] === 0x7f && buf[1] === 0x45 && buf[2] === 0x4c && buf[3] === 0x46;
}

interface ElfFacts {
  source: 'ikconfig';
  config: KernelConfig | null;
  bannerVersion: string | null;
  pvh: boolean;
  elfMachine: number;
}

/** Parses an ELF64 little-endian vmlinux: machine, PVH note, IKCONFIG blob, version banner. */
export function readElf(path: string, buf: Buffer): ElfFacts {
  if (buf.length < 64) throw unreadable(path, 'truncated ELF header');
  if (buf[4] !== 2) throw unreadable(path, `ELF class ${buf[4]} is not ELF64 (x86_64 kernels are ELF64)`);
  if (buf[5] !== 1) throw unreadable(path, 'big-endian ELF is not an x86 kernel');
  const elfMachine = buf.readUInt16LE(18);
  return {
    source: 'ikconfig',
    config: findIkconfig(path, buf),
    bannerVersion: findBannerVersion(buf),
    pvh: hasPvhNote(path, buf),
    elfMachine,
  };
}

/** Walks PT_NOTE segments and SHT_NOTE sections for the Xen note of type 18 (XEN_ELFNOTE_PHYS32_ENTRY). */
export function hasPvhNote(path: string, buf: Buffer): boolean {
  const ranges: [number, number][] = [];
  const phoff = Number(buf.readBigUInt64LE(32));
  const phentsize = buf.readUInt16LE(54);
  const phnum = buf.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 56 > buf.length) throw unreadable(path, 'program header table runs past the end of the file');
    if (buf.readUInt32LE(at) === PT_NOTE) ranges.push([Number(buf.readBigUInt64LE(at + 8)), Number(buf.readBigUInt64LE(at + 32))]);
  }
  const shoff = Number(buf.readBigUInt64LE(40));
  const shentsize = buf.readUInt16LE(58);
  const shnum = buf.readUInt16LE(60);
  for (let i = 0; shoff > 0 && i < shnum; i++) {
    const at = shoff + i * shentsize;
    if (at + 64 > buf.length) break; // section headers are optional for loading; a stripped tail is not fatal
    if (buf.readUInt32LE(at + 4) === SHT_NOTE) ranges.push([Number(buf.readBigUInt64LE(at + 24)), Number(buf.readBigUInt64LE(at + 32))]);
  }
  return ranges.some(([off, len]) => notesContain(buf, off, len, 'Xen', XEN_ELFNOTE_PHYS32_ENTRY));
}

function notesContain(buf: Buffer, off: number, len: number, name: string, type: number): boolean {
  const end = Math.min(off + len, buf.length);
  let p = off;
  const align4 = (n: number): number => (n + 3) & ~3;
  while (p + 12 <= end) {
    const namesz = buf.readUInt32LE(p);
    const descsz = buf.readUInt32LE(p + 4);
    const ntype = buf.readUInt32LE(p + 8);
    const nameStart = p + 12;
    if (nameStart + namesz > end) return false;
    // namesz counts the terminating NUL.
    const n = buf.toString('latin1', nameStart, nameStart + Math.max(0, namesz - 1));
    if (n === name && ntype === type) return true;
    p = nameStart + align4(namesz) + align4(descsz);
  }
  return false;
}

const IKCFG_ST = Buffer.from('IKCFG_ST');
const IKCFG_ED = Buffer.from('IKCFG_ED');

/** Finds and inflates the IKCONFIG blob (IKCFG_ST, gzip data, IKCFG_ED); null when the image has none. */
export function findIkconfig(path: string, buf: Buffer): KernelConfig | null {
  let from = 0;
  for (;;) {
    const st = buf.indexOf(IKCFG_ST, from);
    if (st < 0) return null;
    const data = st + IKCFG_ST.length;
    from = data;
    // The marker string can also appear elsewhere (e.g. in a tool's strings); the real one is followed by gzip.
    if (buf[data] !== 0x1f || buf[data + 1] !== 0x8b) continue;
    const ed = buf.indexOf(IKCFG_ED, data);
    if (ed < 0) throw unreadable(path, 'IKCONFIG start marker without an end marker (truncated image?)');
    let text: string;
    try {
      text = gunzipSync(buf.subarray(data, ed)).toString('utf8');
    } catch (e) {
      throw unreadable(path, `the embedded IKCONFIG blob is corrupt: ${(e as Error).message}`, e);
    }
    return parseConfig(text);
  }
}

const BANNER = Buffer.from('Linux version ');

/** The release from the first "Linux version X.Y..." banner in the image, null when none. */
export function findBannerVersion(buf: Buffer): string | null {
  let from = 0;
  for (;;) {
    const at = buf.indexOf(BANNER, from);
    if (at < 0) return null;
    const tail = buf.toString('latin1', at + BANNER.length, Math.min(buf.length, at + BANNER.length + 128));
    const m = /^(\d+\.\d+[^\s\0]*)/.exec(tail);
    if (m) return m[1]!;
    from = at + BANNER.length;
  }
}

// ---- bzImage (Documentation/arch/x86/boot.rst)

export function isBzImage(buf: Buffer): boolean {
  return buf.length >= 0x250 && buf.toString('latin1', 0x202, 0x206) === 'HdrS';
}

interface BzHeader {
  protocol: number;
  /** Release string the header's kernel_version field points to; null when absent. */
  version: string | null;
  payloadStart: number;
  payloadLength: number;
}

/** Reads the setup header: boot protocol, version string, and where the compressed payload lies. */
export function readBzHeader(path: string, buf: Buffer): BzHeader {
  const protocol = buf.readUInt16LE(0x206);
  if (protocol < 0x208) throw unreadable(path, `boot protocol ${protocol >> 8}.${protocol & 0xff} predates payload_offset (2.08)`);
  const setupSects = buf[0x1f1] || 4; // 0 means 4, per the boot protocol
  const protectedModeStart = (setupSects + 1) * 512;
  const payloadStart = protectedModeStart + buf.readUInt32LE(0x248);
  const payloadLength = buf.readUInt32LE(0x24c);
  if (payloadLength === 0 || payloadStart + payloadLength > buf.length) throw unreadable(path, 'bzImage payload runs past the end of the file (truncated?)');
  const kv = buf.readUInt16LE(0x20e);
  let version: string | null = null;
  if (kv) {
    const at = kv + 0x200;
    const end = buf.indexOf(0, at);
    const s = end > at ? buf.toString('latin1', at, Math.min(end, at + 256)) : '';
    const m = /^(\d+\.\d+\S*)/.exec(s);
    version = m ? m[1]! : null;
  }
  return { protocol, version, payloadStart, payloadLength };
}

/** The compression a payload starts with, by magic bytes (the formats Linux can build a bzImage with). */
export function compressionOf(buf: Buffer, at: number): Compression | null {
  const b = (i: number): number => buf[at + i] ?? -1;
  if (b(0) === 0x1f && (b(1) === 0x8b || b(1) === 0x9e)) return 'gzip';
  if (b(0) === 0xfd && b(1) === 0x37 && b(2) === 0x7a && b(3) === 0x58 && b(4) === 0x5a && b(5) === 0x00) return 'xz';
  if (b(0) === 0x28 && b(1) === 0xb5 && b(2) === 0x2f && b(3) === 0xfd) return 'zstd';
  if (b(0) === 0x02 && b(1) === 0x21 && b(2) === 0x4c && b(3) === 0x18) return 'lz4';
  if (b(0) === 0x42 && b(1) === 0x5a && b(2) === 0x68) return 'bzip2';
  if (b(0) === 0x89 && b(1) === 0x4c && b(2) === 0x5a && b(3) === 0x4f) return 'lzo';
  if (b(0) === 0x5d && b(1) === 0x00 && b(2) === 0x00) return 'lzma';
  return null;
}

async function readBzImage(path: string, buf: Buffer): Promise<KernelImage> {
  const hdr = readBzHeader(path, buf);
  const payload = buf.subarray(hdr.payloadStart, hdr.payloadStart + hdr.payloadLength);
  const compression = compressionOf(payload, 0);
  if (!compression) throw unreadable(path, 'bzImage payload has no known compression magic');
  const vmlinux = await decompress(path, compression, payload);
  if (!isElf(vmlinux)) throw unreadable(path, `decompressed ${compression} payload is not an ELF vmlinux`);
  const elf = readElf(path, vmlinux);
  return {
    path,
    format: 'bzimage',
    source: 'ikconfig',
    config: elf.config,
    bannerVersion: elf.bannerVersion ?? hdr.version,
    // A VMM loading a bzImage never sees the ELF notes inside it, so PVH does not apply.
    pvh: null,
    elfMachine: elf.elfMachine,
    compression,
  };
}

/** Decompressor per format: the Debian tool and its arguments to turn IN into OUT. */
const TOOLS: Record<Exclude<Compression, 'gzip'>, { tool: string; pkg: string; args: (inp: string, out: string) => string[]; ext: string }> = {
  xz: { tool: 'xz', pkg: 'xz-utils', ext: '.xz', args: (i) => ['-d', '-k', '-f', '-q', i] },
  lzma: { tool: 'xz', pkg: 'xz-utils', ext: '.lzma', args: (i) => ['--format=lzma', '-d', '-k', '-f', '-q', i] },
  zstd: { tool: 'zstd', pkg: 'zstd', ext: '.zst', args: (i, o) => ['-d', '-q', '-f', i, '-o', o] },
  lz4: { tool: 'lz4', pkg: 'lz4', ext: '.lz4', args: (i, o) => ['-d', '-q', '-f', i, o] },
  bzip2: { tool: 'bzip2', pkg: 'bzip2', ext: '.bz2', args: (i) => ['-d', '-k', '-f', '-q', i] },
  lzo: { tool: 'lzop', pkg: 'lzop', ext: '.lzo', args: (i, o) => ['-d', '-q', '-f', i, '-o', o] },
};

/**
 * Decompresses a bzImage payload. gzip in-process; the others through their tools, file to file, because run()
 * captures output as text and a vmlinux is binary. Linux appends the uncompressed size (4 bytes) after every
 * non-gzip stream (size_append), which the tools would reject as trailing garbage, so it is cut off first.
 */
export async function decompress(path: string, compression: Compression, payload: Buffer): Promise<Buffer> {
  if (compression === 'gzip') {
    try {
      return gunzipSync(payload);
    } catch (e) {
      throw unreadable(path, `gzip payload is corrupt: ${(e as Error).message}`, e);
    }
  }
  const spec = TOOLS[compression];
  const dir = await mkdtemp(join(tmpdir(), 'hangar-kernel-'));
  try {
    const inp = join(dir, `payload${spec.ext}`);
    const out = join(dir, 'payload');
    await writeFile(inp, payload.subarray(0, payload.length - 4));
    let r;
    try {
      r = await run(spec.tool, spec.args(inp, out), { allowFailure: true, timeoutMs: 120_000 });
    } catch (e) {
      if (isHangarError(e, 'MISSING_HOST_TOOLS')) {
        throw new HangarError('MISSING_HOST_TOOLS', `${spec.tool} is needed to read a ${compression}-compressed bzImage (apt-get install ${spec.pkg})`, { tools: [spec.tool] }, { cause: e });
      }
      throw e;
    }
    if (r.code !== 0) throw unreadable(path, `${compression} payload does not decompress: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
    return await readFile(out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
