// Pure planners of the image pipeline: profiles and package sets, cache keys, argv of debootstrap/mkfs, the
// rootfs size, the kernel option check, the manifest. No I/O here: executors (kernel.ts, rootfs.ts, build.ts)
// gather inputs, call these, and run what they return.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { AGENT_PATH, GUEST_INIT_PATH, INIT_MARKER, READY_MARKER, VNC_PORT } from '../guest-protocol.js';
import { optionValue, parseConfig } from '../kernel/config.js';

/** Bump when the kernel build steps change in a way the inputs below do not capture. */
export const KERNEL_RECIPE_VERSION = 1;
/** Bump when the rootfs steps (customize, slim, mkfs) change in a way the inputs below do not capture. */
export const ROOTFS_RECIPE_VERSION = 3; // 2: no dangling init.d link (guest *.sh files install into init.d themselves); 3: hangar-agent
export const KERNEL_SOURCE_PACKAGE = 'linux-source-6.1';
export const DEBIAN_SUITE = 'bookworm';
export const ARCH = 'x86_64';

export const PROFILES = ['desktop', 'browser'] as const;
export type Profile = (typeof PROFILES)[number];

const DESKTOP_PACKAGES = [
  'iproute2', 'procps', 'busybox', // `ip` for the HANGAR-NET line, ps, `reboot -f`
  'xvfb', 'xfonts-base', 'x11-xserver-utils', // X server without hardware, its fonts, xsetroot for the background
  'x11-utils', // xwininfo: READY waits until the terminal's window is on the screen
  'twm', 'xterm', 'x11vnc',
  'qemu-guest-agent', // not started by hangar-init: bench/agent starts it to compare hangar-agent with it
  'xdg-utils', // xdg-open for @e2b/desktop's open() (shell scripts, 75 kB, no dependencies; a browser image's chromium handles URLs)
];
const PROFILE_PACKAGES: Record<Profile, readonly string[]> = {
  desktop: DESKTOP_PACKAGES,
  // dbus-x11 provides the session bus dconf-service asks for: debootstrap cannot pick an alternative itself.
  // scrot: the in-guest screenshot peers use (bench/control compares Hangar's RFB screenshots with it); its imlib2
  // mostly shares libraries chromium already brings, so it lives here and the desktop image stays lean.
  browser: [...DESKTOP_PACKAGES, 'chromium', 'fonts-dejavu-core', 'dbus-x11', 'scrot'],
};

/**
 * Packages that configure the network from userspace and could override the kernel's `ip=` settings (or listen
 * on the network). None may be in the image; the build fails naming any that a dependency pulled in.
 */
export const FORBIDDEN_PACKAGES = [
  'ifupdown', 'ifupdown2', 'isc-dhcp-client', 'dhcpcd-base', 'dhcpcd5', 'network-manager', 'connman', 'netplan.io',
  'systemd-resolved', 'systemd', 'openssh-server', 'dropbear',
] as const;

/** Guest account that runs the desktop; locked, no password (the controller's authenticated proxy is the way in). */
export const GUEST_USER = { name: 'hangar', uid: 1000 } as const;
export const GUEST_HOSTNAME = 'hangar';

export function profilePackages(profile: Profile): string[] {
  return [...PROFILE_PACKAGES[profile]].sort();
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** JSON with sorted object keys, so a key does not depend on property order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

export interface NamedContent {
  name: string;
  content: string;
}

export interface KernelInputs {
  recipe: number;
  arch: string;
  sourcePackage: string;
  sourceVersion: string;
  /** Fragment files by name with their sha256, in merge order. */
  fragments: { name: string; sha256: string }[];
}

export interface RootfsInputs {
  recipe: number;
  arch: string;
  suite: string;
  variant: 'minbase';
  packages: string[];
  /** Files installed into the guest (the rendered init and friends) by name with their sha256. */
  guestFiles: { name: string; sha256: string }[];
  /** hangar-agent's C sources by name with their sha256 (compiled into the rootfs: a change rebuilds it). */
  agentSources: { name: string; sha256: string }[];
}

export function kernelInputs(sourceVersion: string, fragments: readonly NamedContent[]): KernelInputs {
  return {
    recipe: KERNEL_RECIPE_VERSION,
    arch: ARCH,
    sourcePackage: KERNEL_SOURCE_PACKAGE,
    sourceVersion,
    fragments: fragments.map((f) => ({ name: f.name, sha256: sha256(f.content) })),
  };
}

export function rootfsInputs(profile: Profile, guestFiles: readonly NamedContent[], agentSources: readonly NamedContent[] = []): RootfsInputs {
  return {
    recipe: ROOTFS_RECIPE_VERSION,
    arch: ARCH,
    suite: DEBIAN_SUITE,
    variant: 'minbase',
    packages: profilePackages(profile),
    guestFiles: [...guestFiles].sort((a, b) => a.name.localeCompare(b.name)).map((f) => ({ name: f.name, sha256: sha256(f.content) })),
    agentSources: [...agentSources].sort((a, b) => a.name.localeCompare(b.name)).map((f) => ({ name: f.name, sha256: sha256(f.content) })),
  };
}

/** Content address of an artifact: sha256 of its canonical inputs. The mirror host is deliberately not an input. */
export function cacheKey(inputs: KernelInputs | RootfsInputs): string {
  return sha256(canonicalJson(inputs));
}

/** Image id: profile plus a short hash of both artifact keys (either changing gives a new image). */
export function imageId(profile: Profile, kernelKey: string, rootfsKey: string): string {
  return `${profile}-${sha256(`${kernelKey}:${rootfsKey}`).slice(0, 12)}`;
}

/** Short directory name for a key. */
export const shortKey = (key: string): string => key.slice(0, 16);

// ---- guest files

/** Fills @INIT_MARKER@, @READY_MARKER@, @VNC_PORT@, @GUEST_USER@, @GUEST_UID@, @HOSTNAME@ from guest-protocol.ts. */
export function renderGuestTemplate(text: string): string {
  const vars: Record<string, string> = {
    INIT_MARKER, READY_MARKER, VNC_PORT: String(VNC_PORT), GUEST_USER: GUEST_USER.name, GUEST_UID: String(GUEST_USER.uid),
    HOSTNAME: GUEST_HOSTNAME, GUEST_INIT_PATH, AGENT_PATH,
  };
  const out = text.replace(/@([A-Z_]+)@/g, (m, k: string) => vars[k] ?? m);
  const left = /@[A-Z_]+@/.exec(out);
  if (left) throw new Error(`guest template has an unknown placeholder ${left[0]}`);
  return out;
}

/**
 * Where a file of src/image/guest/ goes in the rootfs: the init at GUEST_INIT_PATH; `*.sh` into
 * /etc/hangar/init.d/ (snippets the init sources before READY); anything else into /etc/hangar/.
 */
export function guestFileDest(name: string): { path: string; mode: number } {
  if (name === 'hangar-init') return { path: GUEST_INIT_PATH, mode: 0o755 };
  if (name.endsWith('.sh')) return { path: `/etc/hangar/init.d/${name}`, mode: 0o644 };
  return { path: `/etc/hangar/${name}`, mode: 0o644 };
}

/** `root:x:…` → root's password field locked ('!' prefix), so no password can log in even if one is set later. */
export function lockRootShadow(shadow: string): string {
  return shadow.split('\n').map((line) => {
    const f = line.split(':');
    if (f[0] !== 'root' || f.length < 2) return line;
    if (!f[1]!.startsWith('!')) f[1] = `!${f[1] || '*'}`;
    return f.join(':');
  }).join('\n');
}

// ---- kernel configuration

export interface DroppedOption {
  option: string;
  requested: string;
  actual: string;
}

/**
 * Requested options (from the fragments) whose value did not survive olddefconfig; an absent option reads as 'n'.
 * Fragments and .config are read with the kernel lint's parser, so both agree on what a line means.
 */
export function droppedOptions(fragmentTexts: readonly string[], finalConfig: string): DroppedOption[] {
  const final = parseConfig(finalConfig);
  const dropped: DroppedOption[] = [];
  for (const text of fragmentTexts) {
    for (const [name, requested] of parseConfig(text).options) {
      const actual = optionValue(final, name);
      if (actual !== requested) dropped.push({ option: `CONFIG_${name}`, requested, actual });
    }
  }
  return dropped;
}

// ---- commands

export interface DebootstrapPlan {
  suite: string;
  mirror: string;
  target: string;
  packages: readonly string[];
  /** Where debootstrap keeps downloaded .debs between builds. */
  debCache: string;
}

export function debootstrapArgv(p: DebootstrapPlan): string[] {
  return [
    '--variant=minbase',
    '--components=main',
    `--include=${[...p.packages].sort().join(',')}`,
    `--cache-dir=${p.debCache}`,
    p.suite,
    p.target,
    p.mirror,
  ];
}

export interface RootfsSizePlan {
  sizeBytes: number;
  inodes: number;
}

const MiB = 1024 * 1024;

/**
 * Image size from what the tree occupies (allocated bytes) plus 25 % and 256 MiB headroom for the ext4
 * metadata, journal and the guest's own writes, rounded up to 64 MiB; inodes likewise with room to spare.
 */
export function planRootfsSize(content: { allocatedBytes: number; files: number }): RootfsSizePlan {
  const raw = content.allocatedBytes * 1.25 + 256 * MiB;
  const sizeBytes = Math.ceil(raw / (64 * MiB)) * 64 * MiB;
  const inodes = Math.ceil((content.files * 1.5 + 16384) / 1024) * 1024;
  return { sizeBytes, inodes };
}

/** A UUID derived from the rootfs key, so the same inputs give the same filesystem UUID. */
export function uuidFromKey(key: string): string {
  const h = sha256(`uuid:${key}`);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function mkfsArgv(p: { sourceDir: string; out: string; size: RootfsSizePlan; label: string; uuid: string }): string[] {
  return [
    '-q', '-F',
    '-L', p.label,
    '-U', p.uuid,
    '-N', String(p.size.inodes),
    '-m', '0', // no reserved blocks: nothing runs as root that needs them
    '-d', p.sourceDir,
    p.out,
    `${Math.round(p.size.sizeBytes / MiB)}M`,
  ];
}

// ---- layout

export interface CacheLayout {
  kernelTree: (sourceVersion: string) => string;
  kernelArtifact: (key: string) => string;
  rootfsArtifact: (key: string) => string;
  debCache: string;
  staging: string;
  locks: string;
}

export function cacheLayout(cacheDir: string): CacheLayout {
  return {
    kernelTree: (v) => join(cacheDir, 'kernel', 'tree', `${KERNEL_SOURCE_PACKAGE}_${v.replace(/[^A-Za-z0-9.+~-]/g, '_')}`),
    kernelArtifact: (k) => join(cacheDir, 'kernel', 'artifacts', shortKey(k)),
    rootfsArtifact: (k) => join(cacheDir, 'rootfs', 'artifacts', shortKey(k)),
    debCache: join(cacheDir, 'debs'),
    staging: join(cacheDir, 'staging'),
    locks: join(cacheDir, 'locks'),
  };
}

// ---- artifacts and manifest

export interface FileInfo {
  sha256: string;
  size: number;
  /** mtime when published: with the size, the cheap check that a golden file was not modified. */
  mtimeMs?: number;
}

export interface KernelArtifactMeta {
  key: string;
  inputs: KernelInputs;
  /** `uname -r` of the built kernel. */
  release: string;
  configSha256: string;
  file: FileInfo;
  builtAt: string;
  durationsMs: Record<string, number>;
  /** Lint verdict per VMM at publish time. */
  lint: Record<string, { ok: boolean; errors: number; warnings: number }>;
  /** The build tree already held objects from an earlier build (its durations are not a cold build's). */
  incremental: boolean;
}

export interface DebPackage {
  name: string;
  version: string;
  arch: string;
}

export interface RootfsArtifactMeta {
  key: string;
  inputs: RootfsInputs;
  mirror: string;
  packages: DebPackage[];
  contentBytes: number;
  files: number;
  file: FileInfo;
  builtAt: string;
  durationsMs: Record<string, number>;
}

export const MANIFEST_SCHEMA = 1;
export const KERNEL_FILE = 'vmlinux';
export const ROOTFS_FILE = 'rootfs.ext4';
export const MANIFEST_FILE = 'manifest.json';

export interface ImageManifest {
  schema: number;
  id: string;
  profile: Profile;
  created: string;
  kernel: { version: string; configSha256: string; sourcePackage: string; sourceVersion: string; lint: KernelArtifactMeta['lint']; incremental: boolean };
  rootfs: { suite: string; mirror: string; packages: DebPackage[]; contentBytes: number };
  files: Record<string, FileInfo>;
  /** Per step, of the build that produced each artifact (a cached artifact keeps its original timings). */
  durationsMs: { kernel: Record<string, number>; rootfs: Record<string, number>; publish?: number };
  inputs: { kernelKey: string; rootfsKey: string; kernel: KernelInputs; rootfs: RootfsInputs };
  guest: { init: string; initMarker: string; readyMarker: string; vncPort: number; cmdline: string };
}

/** The kernel command line the image expects (the VMM appends root device and ip= per VM). */
export const BASE_CMDLINE = `console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rw init=${GUEST_INIT_PATH}`;

export function buildManifest(a: { id: string; profile: Profile; created: string; kernel: KernelArtifactMeta; rootfs: RootfsArtifactMeta; publishMs?: number }): ImageManifest {
  return {
    schema: MANIFEST_SCHEMA,
    id: a.id,
    profile: a.profile,
    created: a.created,
    kernel: {
      version: a.kernel.release,
      configSha256: a.kernel.configSha256,
      sourcePackage: a.kernel.inputs.sourcePackage,
      sourceVersion: a.kernel.inputs.sourceVersion,
      lint: a.kernel.lint,
      incremental: a.kernel.incremental,
    },
    rootfs: { suite: a.rootfs.inputs.suite, mirror: a.rootfs.mirror, packages: a.rootfs.packages, contentBytes: a.rootfs.contentBytes },
    files: { [KERNEL_FILE]: a.kernel.file, [ROOTFS_FILE]: a.rootfs.file },
    durationsMs: { kernel: a.kernel.durationsMs, rootfs: a.rootfs.durationsMs, ...(a.publishMs !== undefined ? { publish: a.publishMs } : {}) },
    inputs: { kernelKey: a.kernel.key, rootfsKey: a.rootfs.key, kernel: a.kernel.inputs, rootfs: a.rootfs.inputs },
    guest: { init: GUEST_INIT_PATH, initMarker: INIT_MARKER, readyMarker: READY_MARKER, vncPort: VNC_PORT, cmdline: BASE_CMDLINE },
  };
}

/** `dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n'` output → sorted packages. */
export function parseDpkgQuery(text: string): DebPackage[] {
  return text.split('\n').filter(Boolean).map((l) => {
    const [name = '', version = '', arch = ''] = l.split('\t');
    return { name, version, arch };
  }).filter((p) => p.name).sort((a, b) => a.name.localeCompare(b.name));
}

/** Host tools the build runs, and the Debian package that provides each (for --install-deps and messages). */
export const HOST_TOOLS: Record<string, string> = {
  make: 'build-essential',
  gcc: 'build-essential',
  bc: 'bc',
  bison: 'bison',
  flex: 'flex',
  perl: 'perl',
  tar: 'tar',
  xz: 'xz-utils',
  debootstrap: 'debootstrap',
  chroot: 'coreutils',
  'dpkg-query': 'dpkg',
  'mkfs.ext4': 'e2fsprogs',
  e2fsck: 'e2fsprogs',
};

/** Packages to install for the missing tools (sorted, unique); unknown names are passed through as packages. */
export function packagesForMissing(missing: readonly string[], extra: Record<string, string> = {}): string[] {
  const map = { ...HOST_TOOLS, ...extra };
  return [...new Set(missing.map((t) => map[t] ?? t))].sort();
}

/** Free space a build needs, by what has to be built. */
export function requiredBytes(p: { kernelTreeExists: boolean; buildKernel: boolean; buildRootfs: boolean; profile: Profile }): number {
  const GiB = 1024 * MiB;
  let need = 0.25 * GiB;
  if (p.buildKernel) need += p.kernelTreeExists ? 0.5 * GiB : 2 * GiB;
  if (p.buildRootfs) need += p.profile === 'browser' ? 5 * GiB : 3 * GiB;
  return Math.round(need);
}
