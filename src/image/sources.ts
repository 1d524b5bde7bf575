// Which Debian mirror to debootstrap from: read from the host's apt sources (one-line *.list and deb822 *.sources),
// never hard-coded. Parsing and choosing are pure; reading the files is a thin executor at the bottom.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HangarError } from '../errors.js';

export interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  signedBy?: string;
  enabled: boolean;
  /** File the entry came from (for messages). */
  file: string;
}

export interface Mirror {
  uri: string;
  suite: string;
  file: string;
  /** Why it was taken as a Debian archive. */
  evidence: string;
}

/** One-line format: `deb [opt=val ...] URI SUITE [COMPONENT...]`; comments and deb-src lines are skipped. */
export function parseOneLineSources(text: string, file = 'sources.list'): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(line);
    if (!m) continue;
    const opts = new Map<string, string>();
    for (const o of (m[2] ?? '').trim().split(/\s+/).filter(Boolean)) {
      const eq = o.indexOf('=');
      if (eq > 0) opts.set(o.slice(0, eq).toLowerCase(), o.slice(eq + 1));
    }
    out.push({
      types: [m[1]!],
      uris: [m[3]!],
      suites: [m[4]!],
      components: (m[5] ?? '').split(/\s+/).filter(Boolean),
      signedBy: opts.get('signed-by'),
      enabled: true,
      file,
    });
  }
  return out;
}

/** deb822 format: stanzas separated by blank lines; continuation lines start with white space. */
export function parseDeb822Sources(text: string, file = 'x.sources'): AptSource[] {
  const out: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last: string | null = null;
    for (const line of stanza.split('\n')) {
      if (line.startsWith('#')) continue;
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last)}\n${line.trim()}`);
        continue;
      }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (!m) continue;
      last = m[1]!.toLowerCase();
      fields.set(last, m[2]!.trim());
    }
    if (!fields.has('types') || !fields.has('uris')) continue;
    const words = (k: string): string[] => (fields.get(k) ?? '').split(/\s+/).filter(Boolean);
    out.push({
      types: words('types'),
      uris: words('uris'),
      suites: words('suites'),
      components: words('components'),
      signedBy: fields.get('signed-by'),
      enabled: (fields.get('enabled') ?? 'yes').toLowerCase() !== 'no',
      file,
    });
  }
  return out;
}

/** Name of apt's cached Release file for URI + suite (apt's URItoFileName, close enough for host/path URIs). */
export function aptListsReleaseName(uri: string, suite: string, kind: 'InRelease' | 'Release'): string {
  const noScheme = uri.replace(/^[a-z+]+:\/\//i, '').replace(/^[^@/]*@/, '').replace(/\/+$/, '');
  return `${noScheme.replace(/_/g, '%5f').replace(/\//g, '_')}_dists_${suite}_${kind}`;
}

/**
 * Picks the entry that serves SUITE `main` from a Debian archive. An apt Release file saying `Origin: Debian`
 * decides; without one, the entry must be signed by the Debian archive keyring, or name no keyring and have a
 * path ending in /debian. Third-party repositories that reuse the suite name (and their own keyring) lose.
 */
export function chooseDebianMirror(sources: readonly AptSource[], suite: string, originOf: (uri: string) => string | null = () => null): Mirror {
  for (const s of sources) {
    if (!s.enabled || !s.types.includes('deb') || !s.suites.includes(suite) || !s.components.includes('main')) continue;
    for (const uri of s.uris) {
      if (!/^https?:\/\//i.test(uri)) continue; // debootstrap fetches over http(s); cdrom:/file: do not apply
      const origin = originOf(uri);
      let evidence: string | null = null;
      if (origin !== null) evidence = origin === 'Debian' ? 'apt Release file says Origin: Debian' : null;
      else if (s.signedBy?.includes('debian-archive-keyring')) evidence = `signed by ${s.signedBy}`;
      else if (s.signedBy === undefined && /\/debian\/?$/.test(new URL(uri).pathname)) evidence = 'unsigned entry with a /debian archive path';
      if (evidence) return { uri: uri.replace(/\/+$/, ''), suite, file: s.file, evidence };
    }
  }
  throw new HangarError('NO_APT_MIRROR', `no apt source serves '${suite} main' from a Debian archive (read ${[...new Set(sources.map((s) => s.file))].join(', ') || 'no files'})`, { suite });
}

/** Reads /etc/apt/sources.list, sources.list.d/*.list and *.sources (other suffixes are ignored, as apt does). */
export async function readHostAptSources(root = '/etc/apt'): Promise<AptSource[]> {
  const out: AptSource[] = [];
  const tryRead = async (p: string): Promise<string | null> => readFile(p, 'utf8').catch(() => null);
  const main = await tryRead(join(root, 'sources.list'));
  if (main !== null) out.push(...parseOneLineSources(main, join(root, 'sources.list')));
  const dir = join(root, 'sources.list.d');
  const names = (await readdir(dir).catch(() => [] as string[])).sort();
  for (const n of names) {
    const p = join(dir, n);
    if (n.endsWith('.list')) out.push(...parseOneLineSources((await tryRead(p)) ?? '', p));
    else if (n.endsWith('.sources')) out.push(...parseDeb822Sources((await tryRead(p)) ?? '', p));
  }
  return out;
}

/** The Origin: field of apt's cached Release file for URI + suite, or null when apt has none cached. */
export async function readAptOrigin(uri: string, suite: string, listsDir = '/var/lib/apt/lists'): Promise<string | null> {
  for (const kind of ['InRelease', 'Release'] as const) {
    const text = await readFile(join(listsDir, aptListsReleaseName(uri, suite, kind)), 'utf8').catch(() => null);
    if (text !== null) return /^Origin:\s*(.+)$/m.exec(text)?.[1]?.trim() ?? '';
  }
  return null;
}

export async function findHostMirror(suite: string, aptRoot = '/etc/apt', listsDir = '/var/lib/apt/lists'): Promise<Mirror> {
  const sources = await readHostAptSources(aptRoot);
  const origins = new Map<string, string | null>();
  for (const s of sources) for (const u of s.uris) if (!origins.has(u)) origins.set(u, await readAptOrigin(u, suite, listsDir));
  return chooseDebianMirror(sources, suite, (u) => origins.get(u) ?? null);
}
