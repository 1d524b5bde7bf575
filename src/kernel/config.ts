// A parsed kernel .config: option values plus what the file says about the kernel it belongs to. Pure: text in,
// values out. Rules read options through the helpers here, so 'absent' and '# ... is not set' mean the same (n).

/** 'y' | 'm' | 'n', or the raw value of a string/int/hex option (quotes removed). */
export type OptionValue = string;

export interface KernelConfig {
  /** Option values keyed by name without the CONFIG_ prefix (e.g. 'VIRTIO_BLK'). */
  options: ReadonlyMap<string, OptionValue>;
  /** Kernel release from the header ("# Linux/x86 6.1.192 Kernel Configuration"), null when absent. */
  version: string | null;
  /** Architecture named in the header ('x86', 'x86_64'), null when absent. */
  headerArch: string | null;
  /** Lines that looked like options but could not be parsed (kept for diagnostics, never fatal). */
  malformed: number;
}

const HEADER_RE = /^#\s*Linux\/(\S+)\s+(\S+)\s+Kernel Configuration\s*$/;
const SET_RE = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/;
const UNSET_RE = /^#\s*CONFIG_([A-Za-z0-9_]+) is not set\s*$/;

export function parseConfig(text: string): KernelConfig {
  const options = new Map<string, OptionValue>();
  let version: string | null = null;
  let headerArch: string | null = null;
  let malformed = 0;
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.startsWith('CONFIG_')) {
      const m = SET_RE.exec(line);
      if (!m) { malformed++; continue; }
      let value = m[2]!.trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1).replace(/\\(["\\])/g, '$1');
      options.set(m[1]!, value);
    } else if (line.startsWith('#')) {
      const u = UNSET_RE.exec(line);
      if (u) { options.set(u[1]!, 'n'); continue; }
      if (version === null) {
        const h = HEADER_RE.exec(line);
        if (h) { headerArch = h[1]!; version = h[2]!; }
      }
    }
  }
  return { options, version, headerArch, malformed };
}

/** True when the text is plausibly a kernel config (at least one option line). */
export function looksLikeConfig(text: string): boolean {
  return /^(CONFIG_[A-Za-z0-9_]+=|# CONFIG_[A-Za-z0-9_]+ is not set)/m.test(text);
}

/** A config built from a plain object, for tests and synthetic cases: { VIRTIO: 'y', PCI: 'n' }. */
export function configFrom(values: Record<string, OptionValue>, version: string | null = null): KernelConfig {
  return { options: new Map(Object.entries(values).map(([k, v]) => [stripPrefix(k), v])), version, headerArch: null, malformed: 0 };
}

/** A copy with some options changed; a value of undefined removes the option (absent = n). */
export function withOptions(cfg: KernelConfig, changes: Record<string, OptionValue | undefined>): KernelConfig {
  const options = new Map(cfg.options);
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) options.delete(stripPrefix(k));
    else options.set(stripPrefix(k), v);
  }
  return { ...cfg, options };
}

function stripPrefix(name: string): string {
  return name.startsWith('CONFIG_') ? name.slice(7) : name;
}

/** The value of an option; absent options are 'n'. Accepts names with or without the CONFIG_ prefix. */
export function optionValue(cfg: KernelConfig, name: string): OptionValue {
  return cfg.options.get(stripPrefix(name)) ?? 'n';
}
export const isBuiltin = (cfg: KernelConfig, name: string): boolean => optionValue(cfg, name) === 'y';
export const isModule = (cfg: KernelConfig, name: string): boolean => optionValue(cfg, name) === 'm';
export const isEnabled = (cfg: KernelConfig, name: string): boolean => {
  const v = optionValue(cfg, name);
  return v !== 'n' && v !== '';
};

/** Renders an option the way .config writes it, for messages: CONFIG_X=y / CONFIG_X is not set. */
export function describeOption(cfg: KernelConfig, name: string): string {
  const v = optionValue(cfg, name);
  return v === 'n' ? `CONFIG_${stripPrefix(name)} is not set` : `CONFIG_${stripPrefix(name)}=${v}`;
}

// ---- versions

/** [major, minor, patch] of a kernel or VMM version string ('6.1.192-2-amd64' → [6, 1, 192]); null when unparsable. */
export function parseVersion(v: string): [number, number, number] | null {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

/** Compares two version strings by major.minor.patch; unparsable strings sort first. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a) ?? [-1, -1, -1];
  const pb = parseVersion(b) ?? [-1, -1, -1];
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i]! - pb[i]!;
  return 0;
}

/** 'major.minor' of a version string ('6.1.192' → '6.1'); null when unparsable. */
export function seriesOf(v: string): string | null {
  const p = parseVersion(v);
  return p ? `${p[0]}.${p[1]}` : null;
}

/** What is known about the kernel release: exact from a header or banner, or a range dated from Kconfig symbols. */
export interface KernelVersionInfo {
  exact: string | null;
  /** Inclusive lower bound, when dated from symbols. */
  min: string | null;
  /** Exclusive upper bound, when dated from symbols. */
  below: string | null;
  basis: 'config header' | 'version banner' | 'Kconfig symbols' | null;
}

// Kconfig symbols that every generated x86 config of a kernel at or after `since` contains (one of each group).
// Their absence from a complete config dates it before `since`. Sources: init/Kconfig history (CC_IS_GCC and
// CC_IS_CLANG arrived in 4.18, CC_VERSION_TEXT in 5.8).
const VERSION_MARKERS: readonly { symbols: readonly string[]; since: string }[] = [
  { symbols: ['CC_IS_GCC', 'CC_IS_CLANG'], since: '4.18' },
  { symbols: ['CC_VERSION_TEXT'], since: '5.8' },
];
/** A generated x86_64 .config has thousands of lines; below this it may be a fragment, where absence proves nothing. */
const COMPLETE_CONFIG_MIN_OPTIONS = 500;

/** The kernel version from the config header, the image banner, or (failing both) dated from Kconfig symbols. */
export function kernelVersionInfo(cfg: KernelConfig | null, bannerVersion: string | null): KernelVersionInfo {
  if (cfg?.version && parseVersion(cfg.version)) return { exact: cfg.version, min: null, below: null, basis: 'config header' };
  if (bannerVersion && parseVersion(bannerVersion)) return { exact: bannerVersion, min: null, below: null, basis: 'version banner' };
  if (!cfg || cfg.options.size < COMPLETE_CONFIG_MIN_OPTIONS) return { exact: null, min: null, below: null, basis: null };
  let min: string | null = null;
  let below: string | null = null;
  for (const m of VERSION_MARKERS) {
    const present = m.symbols.some((s) => cfg.options.has(s));
    if (present) { if (!min || compareVersions(m.since, min) > 0) min = m.since; }
    else if (!below || compareVersions(m.since, below) < 0) below = m.since;
  }
  return { exact: null, min, below, basis: min || below ? 'Kconfig symbols' : null };
}
