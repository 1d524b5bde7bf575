// Synthetic kernels for the reader tests: a minimal ELF64 with the notes and blobs a vmlinux carries, and an x86
// bzImage around a compressed vmlinux. Built byte by byte from the ELF spec and the x86 boot protocol, so the parser
// is covered deterministically without a kernel build. Non-gzip payloads are compressed with the real tools.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { run } from '../../src/util/exec.js';
import type { Compression } from '../../src/kernel/image-reader.js';

export interface ElfSpec {
  /** e_machine; 62 is x86_64. */
  machine?: number;
  /** Add the Xen note of type 18 (XEN_ELFNOTE_PHYS32_ENTRY). */
  pvh?: boolean;
  /** Config text embedded between IKCFG_ST/IKCFG_ED; null for none. */
  ikconfig?: string | null;
  /** Release in a "Linux version ..." banner; null for none. */
  banner?: string | null;
  /** Put a bare "IKCFG_ST" string (not followed by gzip) before the real blob, as a decoy. */
  decoy?: boolean;
  /** Cut the IKCFG_ED marker off (a truncated blob). */
  noEndMarker?: boolean;
  /** Describe the notes by a section header (SHT_NOTE) instead of a program header (PT_NOTE). */
  notesInSection?: boolean;
}

function note(name: string, type: number, desc: Buffer): Buffer {
  const n = Buffer.from(name + '\0', 'latin1');
  const pad = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const head = Buffer.alloc(12);
  head.writeUInt32LE(n.length, 0);
  head.writeUInt32LE(desc.length, 4);
  head.writeUInt32LE(type, 8);
  return Buffer.concat([head, pad(n), pad(desc)]);
}

/** A minimal little-endian ELF64 with a notes area and a data area holding the banner and IKCONFIG blob. */
export function makeElf(spec: ElfSpec = {}): Buffer {
  const notes = Buffer.concat([
    note('GNU', 3, Buffer.from('0123456789abcdef0123', 'latin1')), // a build-id note first, as in a real vmlinux
    note('Xen', 17, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0])), // another Xen note type, which must not count as PVH
    ...(spec.pvh ? [note('Xen', 18, Buffer.from([0x00, 0x10, 0x00, 0x01, 0, 0, 0, 0]))] : []),
  ]);
  const parts: Buffer[] = [];
  if (spec.banner !== null) parts.push(Buffer.from(`Linux version ${spec.banner ?? '6.1.99-hangar'} (hangar@build) (gcc 12) #1 SMP\n\0`, 'latin1'));
  if (spec.decoy) parts.push(Buffer.from('usage: IKCFG_ST marker\0', 'latin1'));
  if (spec.ikconfig != null) {
    parts.push(Buffer.from('IKCFG_ST'), gzipSync(Buffer.from(spec.ikconfig)));
    if (!spec.noEndMarker) parts.push(Buffer.from('IKCFG_ED'));
  }
  const data = Buffer.concat(parts);
  const NOTES_AT = 0x200;
  const DATA_AT = NOTES_AT + notes.length + 64;
  const SH_AT = DATA_AT + data.length + 64;
  const buf = Buffer.alloc(SH_AT + (spec.notesInSection ? 2 * 64 : 0));
  buf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0); // magic, ELFCLASS64, little-endian, version
  buf.writeUInt16LE(2, 16); // ET_EXEC
  buf.writeUInt16LE(spec.machine ?? 62, 18);
  buf.writeUInt32LE(1, 20);
  buf.writeBigUInt64LE(0x1000000n, 24); // e_entry
  buf.writeBigUInt64LE(64n, 32); // e_phoff
  buf.writeBigUInt64LE(spec.notesInSection ? BigInt(SH_AT) : 0n, 40); // e_shoff
  buf.writeUInt16LE(64, 52); // e_ehsize
  buf.writeUInt16LE(56, 54); // e_phentsize
  buf.writeUInt16LE(spec.notesInSection ? 0 : 1, 56); // e_phnum
  buf.writeUInt16LE(64, 58); // e_shentsize
  buf.writeUInt16LE(spec.notesInSection ? 2 : 0, 60); // e_shnum
  if (!spec.notesInSection) {
    buf.writeUInt32LE(4, 64); // PT_NOTE
    buf.writeBigUInt64LE(BigInt(NOTES_AT), 64 + 8); // p_offset
    buf.writeBigUInt64LE(BigInt(notes.length), 64 + 32); // p_filesz
  } else {
    const sh = SH_AT + 64; // section 0 is the null section
    buf.writeUInt32LE(7, sh + 4); // SHT_NOTE
    buf.writeBigUInt64LE(BigInt(NOTES_AT), sh + 24); // sh_offset
    buf.writeBigUInt64LE(BigInt(notes.length), sh + 32); // sh_size
  }
  notes.copy(buf, NOTES_AT);
  data.copy(buf, DATA_AT);
  return buf;
}

/** Compresses like the kernel's arch/x86/boot/compressed/Makefile: the tool's stream, then (non-gzip) a 4-byte size. */
export async function compressPayload(data: Buffer, compression: Compression): Promise<Buffer> {
  if (compression === 'gzip') return gzipSync(data, { level: 9 });
  const dir = await mkdtemp(join(tmpdir(), 'hangar-fixture-'));
  try {
    const inp = join(dir, 'vmlinux.bin');
    await writeFile(inp, data);
    const plan: Record<Exclude<Compression, 'gzip'>, [string, string[], string]> = {
      xz: ['xz', ['-k', '-f', '-q', '--check=crc32', inp], `${inp}.xz`],
      lzma: ['xz', ['--format=lzma', '-k', '-f', '-q', inp], `${inp}.lzma`],
      zstd: ['zstd', ['-q', '-f', '-19', inp, '-o', `${inp}.zst`], `${inp}.zst`],
      lz4: ['lz4', ['-l', '-q', '-f', inp, `${inp}.lz4`], `${inp}.lz4`],
      bzip2: ['bzip2', ['-k', '-f', '-q', inp], `${inp}.bz2`],
      lzo: ['lzop', ['-q', '-f', inp, '-o', `${inp}.lzo`], `${inp}.lzo`],
    };
    const [tool, args, out] = plan[compression];
    await run(tool, args);
    const size = Buffer.alloc(4);
    size.writeUInt32LE(data.length, 0);
    return Buffer.concat([await readFile(out), size]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** An x86 bzImage (boot protocol 2.15) whose payload is `payload`, with a kernel_version string in the setup area. */
export function makeBzImage(payload: Buffer, opts: { version?: string; setupSects?: number } = {}): Buffer {
  const setupSects = opts.setupSects ?? 4;
  const pmStart = ((setupSects || 4) + 1) * 512; // 0 means 4, per the boot protocol
  const PAYLOAD_OFFSET = 0x100; // relative to the protected-mode code, like the decompressor stub before input_data
  const buf = Buffer.alloc(pmStart + PAYLOAD_OFFSET + payload.length + 64);
  buf[0x1f1] = setupSects;
  buf[0x1fe] = 0x55;
  buf[0x1ff] = 0xaa;
  buf.write('HdrS', 0x202, 'latin1');
  buf.writeUInt16LE(0x020f, 0x206);
  const VERSION_AT = 0x600;
  buf.write(`${opts.version ?? '6.1.99-hangar (hangar@build) #1 SMP'}\0`, VERSION_AT, 'latin1');
  buf.writeUInt16LE(VERSION_AT - 0x200, 0x20e);
  buf.writeUInt32LE(PAYLOAD_OFFSET, 0x248);
  buf.writeUInt32LE(payload.length, 0x24c);
  payload.copy(buf, pmStart + PAYLOAD_OFFSET);
  return buf;
}

/** A small but complete-looking config a Hangar guest passes the lint with, for both VMMs. */
export const GOOD_CONFIG = `#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.1.99 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"
CONFIG_CC_IS_GCC=y
CONFIG_64BIT=y
CONFIG_X86_64=y
CONFIG_X86=y
CONFIG_PRINTK=y
CONFIG_HYPERVISOR_GUEST=y
CONFIG_PARAVIRT=y
CONFIG_KVM_GUEST=y
CONFIG_PVH=y
CONFIG_SWIOTLB=y
# CONFIG_ACPI is not set
# CONFIG_PCI is not set
# CONFIG_MODULES is not set
CONFIG_BLK_DEV_INITRD=y
CONFIG_BINFMT_ELF=y
CONFIG_BINFMT_SCRIPT=y
CONFIG_FUTEX=y
CONFIG_EPOLL=y
CONFIG_NET=y
CONFIG_INET=y
CONFIG_UNIX=y
CONFIG_IP_PNP=y
CONFIG_DEVTMPFS=y
CONFIG_DEVTMPFS_MOUNT=y
CONFIG_BLOCK=y
CONFIG_VIRTIO_BLK=y
CONFIG_VIRTIO_NET=y
CONFIG_TTY=y
CONFIG_UNIX98_PTYS=y
CONFIG_SERIAL_8250=y
CONFIG_SERIAL_8250_CONSOLE=y
CONFIG_VIRTIO=y
CONFIG_VIRTIO_MENU=y
CONFIG_VIRTIO_MMIO=y
CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y
CONFIG_EXT4_FS=y
CONFIG_PROC_FS=y
CONFIG_SYSFS=y
CONFIG_TMPFS=y
CONFIG_IKCONFIG=y
CONFIG_IKCONFIG_PROC=y
`;
