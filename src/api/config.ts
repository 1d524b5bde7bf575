// The controller's configuration: defaults, then the config file, then flags — normalised once here.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HangarError } from '../errors.js';
import { normaliseNetConfig, type NetConfig, type NetConfigInput } from '../net/config.js';
import { resolvePaths, stateDbPath, type HangarPaths } from '../config.js';
import { normaliseOrigin } from '../desktop/deps.js';
import { absPath, invalidArgument, NAME_MAX_LENGTH, oneOf, validInt } from '../util/validate.js';
import { DEFAULT_LIMITS, type Range, type VmLimits } from '../vm/input.js';
import { DEFAULT_RESOURCES, type ResourceDefaults } from '../vmm/cgroup/plan.js';
import { DEFAULT_VMM_USER } from '../vmm/confine.js';
import { VMM_REGISTRY } from '../vmm/registry.js';
import { VMM_KINDS, type VmmKind } from '../vmm/types.js';
import { DEFAULT_STREAM_LIMITS, type StreamLimits } from './streams.js';

export interface ControllerConfigInput {
  listen?: { host?: string; port?: number };
  net?: Partial<NetConfigInput> & { hostNetns?: string | null };
  defaultVmm?: VmmKind;
  readyTimeoutMs?: number;
  maxVms?: number;
  /** How often the TTL reaper and the health loop run. */
  reapIntervalMs?: number;
  healthIntervalMs?: number;
  /** Lifetime of viewer tokens. */
  viewerTokenTtlS?: number;
  /** Idle VMs are hibernated after this many seconds without a viewer (0: never). */
  hibernateAfterS?: number;
  /** What an idle VM does: hibernate (default) or pause. A VM's own idleAction overrides it. */
  idleAction?: 'hibernate' | 'pause';
  /** Warm pools: guest memory all members may hold (MiB, 0: no budget) and members restored at once. */
  pools?: { memoryBudgetMiB?: number; parallel?: number };
  /** Browser origins besides the controller's own whose pages may open desktops (e.g. a reverse proxy's). */
  viewerOrigins?: string[];
  /**
   * Run Firecracker through its jailer: each VMM in its own chroot as an unprivileged user. Needed for clones of
   * Firecracker snapshots (each clone sees its disk at the same path inside its own jail).
   */
  firecracker?: { jailer?: { uid: number; gid: number; chrootBaseDir?: string; binary?: string } };
  /**
   * What a create request may ask for (defaults: vcpus 1–8, memMiB 128–16384, ttlSeconds 60–604800, names up to
   * 63 characters). The API schema and /openapi.json are built from these; they must fit every VMM driver.
   */
  limits?: { vcpus?: Partial<Range>; memMiB?: Partial<Range>; ttlSeconds?: Partial<Range>; name?: { maxLength?: number } };
  /** Caps of the event and console streams (defaults: 64 open, 32 per API key, 1 MiB waiting per client, 60 s stalled). */
  streams?: Partial<StreamLimits>;
  /** A VM's console.log is trimmed to its newest part past this many bytes (default 64 MiB). */
  consoleMaxBytes?: number;
  /**
   * How VMMs are confined: the unprivileged user QEMU runs as (default hangar-vmm, created when absent; null: as
   * the controller, for development only), per-VM cgroups (default on where the host has them) and the defaults
   * of their limits (cpuPerVcpu 1, overheadMiB 256, swapMiB 0, pids 512, io none).
   */
  vmm?: { user?: string | null; cgroups?: boolean; resources?: Partial<ResourceDefaults> };
  /** Session recordings: record every viewer session (default false); retention (default 7 days, 512 MiB each). */
  recordings?: { viewerSessions?: boolean; maxAgeS?: number; maxBytes?: number };
}

export interface ControllerConfig {
  paths: HangarPaths;
  listen: { host: string; port: number };
  net: NetConfig;
  /** Create cfg.net.hostNetns if it is missing (the sandboxed host side). */
  createHostNetns: boolean;
  defaultVmm: VmmKind;
  readyTimeoutMs: number;
  maxVms: number;
  reapIntervalMs: number;
  healthIntervalMs: number;
  viewerTokenTtlS: number;
  hibernateAfterS: number;
  idleAction: 'hibernate' | 'pause';
  pools: { memoryBudgetMiB: number | null; parallel: number };
  viewerOrigins: string[];
  /** Create-VM limits (the API schema is built from them). */
  limits: VmLimits;
  /** Caps of the event and console streams. */
  streams: StreamLimits;
  /** Console logs are trimmed past this size (checked every reapIntervalMs). */
  consoleMaxBytes: number;
  /** Session recordings under stateDir/recordings. */
  recordings: RecordingConfig;
  /** Jailer options for the Firecracker driver, or null to run it directly. */
  firecrackerJailer: JailerConfig | null;
  /** VMM confinement: its user (null: the controller's), cgroups on/off, limit defaults. */
  vmm: { user: string | null; cgroups: boolean; resources: ResourceDefaults };
  tokenPath: string;
  dbPath: string;
  /** Where a running controller says how to reach it (url, pid) for the CLI. */
  endpointPath: string;
  logPath: string;
}

/**
 * By default all VM networking lives in the namespace `hangar`, and the "host side" of its veth is a second
 * namespace `hangar-host` that Hangar creates: nothing in the root namespace's network is touched, and VMs are
 * isolated from host services. Set `net.hostNetns` to null to put the host end of the veth in the root namespace
 * (a dedicated host where the controller should reach VMs without a relay).
 */
export const DEFAULT_NET: NetConfigInput = {
  mode: 'netns',
  netns: 'hangar',
  bridge: 'hgbr0',
  cidr: '10.242.0.0/24',
  hostNetns: 'hangar-host',
};

export function loadControllerConfig(opts: { file?: string; env?: NodeJS.ProcessEnv; overrides?: ControllerConfigInput } = {}): ControllerConfig {
  const env = opts.env ?? process.env;
  const paths = resolvePaths(env);
  const file = opts.file ?? env.HANGAR_CONFIG ?? join(paths.stateDir, 'config.json');
  let fromFile: ControllerConfigInput = {};
  if (existsSync(file)) {
    try {
      fromFile = JSON.parse(readFileSync(file, 'utf8')) as ControllerConfigInput;
    } catch (e) {
      throw new HangarError('INVALID_ARGUMENT', `config file ${file} is not valid JSON: ${(e as Error).message}`, { file });
    }
  } else if (opts.file) {
    throw new HangarError('INVALID_ARGUMENT', `config file ${file} does not exist`, { file });
  }
  const o = opts.overrides ?? {};
  const netIn = { ...DEFAULT_NET, ...fromFile.net, ...o.net } as NetConfigInput & { hostNetns?: string | null };
  if (netIn.hostNetns === null) delete netIn.hostNetns;
  if (netIn.mode === 'bridge') delete netIn.netns;
  const listen = { host: '127.0.0.1', port: 7070, ...fromFile.listen, ...o.listen };
  if (typeof listen.host !== 'string' || !/^[\w.:-]{1,255}$/.test(listen.host)) {
    throw new HangarError('INVALID_ARGUMENT', `listen.host is not a host name or address: ${JSON.stringify(listen.host)}`, { field: 'listen.host' });
  }
  const pick = <K extends keyof ControllerConfigInput>(k: K): ControllerConfigInput[K] => o[k] ?? fromFile[k];
  return {
    paths,
    listen: { host: listen.host, port: validInt(listen.port, 'listen.port', 0, 65535) },
    net: normaliseNetConfig(netIn),
    createHostNetns: netIn.hostNetns !== undefined,
    defaultVmm: oneOf(pick('defaultVmm') ?? 'qemu', 'defaultVmm', VMM_KINDS),
    readyTimeoutMs: validInt(pick('readyTimeoutMs') ?? 180_000, 'readyTimeoutMs', 1000, 3_600_000),
    maxVms: validInt(pick('maxVms') ?? 32, 'maxVms', 1, 4096),
    reapIntervalMs: validInt(pick('reapIntervalMs') ?? 10_000, 'reapIntervalMs', 100, 3_600_000),
    healthIntervalMs: validInt(pick('healthIntervalMs') ?? 30_000, 'healthIntervalMs', 100, 3_600_000),
    viewerTokenTtlS: validInt(pick('viewerTokenTtlS') ?? 300, 'viewerTokenTtlS', 10, 86_400),
    hibernateAfterS: validInt(pick('hibernateAfterS') ?? 0, 'hibernateAfterS', 0, 30 * 86_400),
    idleAction: oneOf(pick('idleAction') ?? 'hibernate', 'idleAction', ['hibernate', 'pause'] as const),
    pools: {
      memoryBudgetMiB: validInt(pick('pools')?.memoryBudgetMiB ?? 0, 'pools.memoryBudgetMiB', 0, 2 ** 30) || null,
      parallel: validInt(pick('pools')?.parallel ?? 1, 'pools.parallel', 1, 16),
    },
    viewerOrigins: viewerOrigins(pick('viewerOrigins')),
    limits: vmLimits(pick('limits')),
    streams: streamLimits(pick('streams')),
    consoleMaxBytes: validInt(pick('consoleMaxBytes') ?? 64 * 1024 * 1024, 'consoleMaxBytes', 1024 * 1024, 2 ** 40),
    recordings: recordingConfig(pick('recordings')),
    firecrackerJailer: jailerConfig(pick('firecracker')?.jailer),
    vmm: vmmConfig(pick('vmm')),
    tokenPath: join(paths.stateDir, 'token'),
    dbPath: stateDbPath(paths),
    endpointPath: join(paths.stateDir, 'controller.json'),
    logPath: join(paths.stateDir, 'controller.log'),
  };
}

function viewerOrigins(v: unknown): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > 64) throw new HangarError('INVALID_ARGUMENT', 'viewerOrigins must be a list of at most 64 origins', { field: 'viewerOrigins' });
  return v.map((o) => {
    if (typeof o !== 'string') throw new HangarError('INVALID_ARGUMENT', 'viewerOrigins must be a list of strings', { field: 'viewerOrigins' });
    return normaliseOrigin(o, 'viewerOrigins');
  });
}

/** What every driver accepts: a configured limit beyond it would pass the API and fail in the VMM. */
const DRIVER_LIMITS = VMM_KINDS.map((k) => [k, VMM_REGISTRY[k].limits] as const);
/** A TTL beyond a year is a VM that should not have one. */
const MAX_TTL_SECONDS = 366 * 86_400;

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function onlyKeys(o: Record<string, unknown>, field: string, allowed: string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw invalidArgument({ field: `${field}.${k}`, reason: 'unknown', allowed }, `is not a limit (${allowed.join(', ')})`);
  }
}

/** Why a driver would refuse `n` vCPUs or MiB, or null when all accept it. */
function driverRefusal(key: 'vcpus' | 'memMiB', n: number): string | null {
  const unit = key === 'vcpus' ? 'vCPUs' : 'MiB';
  for (const [driver, d] of DRIVER_LIMITS) {
    if (n > d[key].max) return `is ${n}, but the ${driver} driver accepts at most ${d[key].max} ${unit}`;
    if (n < d[key].min) return `is ${n}, but the ${driver} driver needs at least ${d[key].min} ${unit}`;
  }
  return null;
}

/** { min?, max? } over `def`, each an integer in [floor, ceiling] (a driver's refusal named), min <= max. */
function range(v: unknown, field: string, def: Range, floor: number, ceiling: number, refusal: (n: number) => string | null): Range {
  if (v === undefined) return def;
  if (!isObject(v)) throw invalidArgument({ field, reason: 'type', expected: 'object', got: v }, 'must be an object { min, max }');
  onlyKeys(v, field, ['min', 'max']);
  const out: Range = { ...def };
  for (const bound of ['min', 'max'] as const) {
    const n = v[bound];
    if (n === undefined) continue;
    const why = typeof n === 'number' && Number.isInteger(n) ? refusal(n) : null;
    if (why) throw invalidArgument({ field: `${field}.${bound}`, reason: 'range', expected: 'integer', min: floor, max: ceiling, got: n }, why, { quoteGot: false });
    out[bound] = validInt(n, `${field}.${bound}`, floor, ceiling);
  }
  if (out.min > out.max) throw invalidArgument({ field: `${field}.min`, reason: 'range', max: out.max, got: out.min }, `must not exceed ${field}.max (${out.max})`);
  return out;
}

/** The create-VM limits from the config, refused at load when a VMM driver would not accept them. */
export function vmLimits(v: unknown): VmLimits {
  if (v === undefined) return DEFAULT_LIMITS;
  if (!isObject(v)) throw invalidArgument({ field: 'limits', reason: 'type', expected: 'object', got: v }, 'must be an object');
  onlyKeys(v, 'limits', ['vcpus', 'memMiB', 'ttlSeconds', 'name']);
  const span = (key: 'vcpus' | 'memMiB'): [number, number] => [Math.max(...DRIVER_LIMITS.map(([, d]) => d[key].min)), Math.min(...DRIVER_LIMITS.map(([, d]) => d[key].max))];
  if (v.name !== undefined && !isObject(v.name)) throw invalidArgument({ field: 'limits.name', reason: 'type', expected: 'object', got: v.name }, 'must be an object { maxLength }');
  if (v.name) onlyKeys(v.name, 'limits.name', ['maxLength']);
  const maxLength = v.name?.maxLength;
  return {
    vcpus: range(v.vcpus, 'limits.vcpus', DEFAULT_LIMITS.vcpus, ...span('vcpus'), (n) => driverRefusal('vcpus', n)),
    memMiB: range(v.memMiB, 'limits.memMiB', DEFAULT_LIMITS.memMiB, ...span('memMiB'), (n) => driverRefusal('memMiB', n)),
    ttlSeconds: range(v.ttlSeconds, 'limits.ttlSeconds', DEFAULT_LIMITS.ttlSeconds, 1, MAX_TTL_SECONDS, () => null),
    name: { maxLength: maxLength === undefined ? DEFAULT_LIMITS.name.maxLength : validInt(maxLength, 'limits.name.maxLength', 1, NAME_MAX_LENGTH) },
  };
}

/** The stream caps from the config, each an integer in its range. */
export function streamLimits(v: unknown): StreamLimits {
  if (v === undefined) return DEFAULT_STREAM_LIMITS;
  if (!isObject(v)) throw invalidArgument({ field: 'streams', reason: 'type', expected: 'object', got: v }, 'must be an object');
  onlyKeys(v, 'streams', ['maxClients', 'maxPerKey', 'maxBufferedBytes', 'stallMs']);
  const d = DEFAULT_STREAM_LIMITS;
  return {
    maxClients: validInt(v.maxClients ?? d.maxClients, 'streams.maxClients', 1, 100_000),
    maxPerKey: validInt(v.maxPerKey ?? d.maxPerKey, 'streams.maxPerKey', 1, 100_000),
    maxBufferedBytes: validInt(v.maxBufferedBytes ?? d.maxBufferedBytes, 'streams.maxBufferedBytes', 64 * 1024, 1024 * 1024 * 1024),
    stallMs: validInt(v.stallMs ?? d.stallMs, 'streams.stallMs', 1000, 3_600_000),
  };
}

export interface RecordingConfig {
  viewerSessions: boolean;
  maxAgeS: number;
  maxBytes: number;
}

export function recordingConfig(v: unknown): RecordingConfig {
  const d = { viewerSessions: false, maxAgeS: 7 * 86_400, maxBytes: 512 * 1024 * 1024 };
  if (v === undefined) return d;
  if (!isObject(v)) throw invalidArgument({ field: 'recordings', reason: 'type', expected: 'object', got: v }, 'must be an object');
  onlyKeys(v, 'recordings', ['viewerSessions', 'maxAgeS', 'maxBytes']);
  if (v.viewerSessions !== undefined && typeof v.viewerSessions !== 'boolean') throw invalidArgument({ field: 'recordings.viewerSessions', reason: 'type', expected: 'boolean', got: v.viewerSessions }, 'must be true or false');
  return {
    viewerSessions: v.viewerSessions === true,
    maxAgeS: validInt(v.maxAgeS ?? d.maxAgeS, 'recordings.maxAgeS', 60, 366 * 86_400),
    maxBytes: validInt(v.maxBytes ?? d.maxBytes, 'recordings.maxBytes', 1024 * 1024, 2 ** 40),
  };
}

export interface JailerConfig {
  uid: number;
  gid: number;
  chrootBaseDir: string;
  binary?: string;
}

/** The jailer's default chroot base; it must share a filesystem with the VM disks (they are hard-linked in). */
export const DEFAULT_CHROOT_BASE = '/srv/jailer';

function jailerConfig(v: unknown): JailerConfig | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object') throw new HangarError('INVALID_ARGUMENT', 'firecracker.jailer must be an object', { field: 'firecracker.jailer' });
  const j = v as Record<string, unknown>;
  // uid/gid 0 would defeat the jail: the VMM must drop to an unprivileged user.
  return {
    uid: validInt(j.uid, 'firecracker.jailer.uid', 1, 0xfffffffe),
    gid: validInt(j.gid, 'firecracker.jailer.gid', 1, 0xfffffffe),
    chrootBaseDir: absPath(j.chrootBaseDir ?? DEFAULT_CHROOT_BASE, 'firecracker.jailer.chrootBaseDir'),
    ...(j.binary !== undefined ? { binary: absPath(j.binary, 'firecracker.jailer.binary') } : {}),
  };
}

/** The VMM confinement settings: a user name (or null), cgroups on/off, and each limit default in its range. */
export function vmmConfig(v: unknown): ControllerConfig['vmm'] {
  const def = { user: DEFAULT_VMM_USER, cgroups: true, resources: DEFAULT_RESOURCES };
  if (v === undefined) return def;
  if (!isObject(v)) throw invalidArgument({ field: 'vmm', reason: 'type', expected: 'object', got: v }, 'must be an object');
  onlyKeys(v, 'vmm', ['user', 'cgroups', 'resources']);
  const user = v.user === undefined ? DEFAULT_VMM_USER : v.user;
  if (user !== null && (typeof user !== 'string' || !/^[a-z_][a-z0-9_-]{0,31}$/.test(user))) {
    throw invalidArgument({ field: 'vmm.user', reason: 'format', got: user }, 'must be a user name or null');
  }
  if (v.cgroups !== undefined && typeof v.cgroups !== 'boolean') throw invalidArgument({ field: 'vmm.cgroups', reason: 'type', expected: 'boolean', got: v.cgroups }, 'must be true or false');
  const r = v.resources ?? {};
  if (!isObject(r)) throw invalidArgument({ field: 'vmm.resources', reason: 'type', expected: 'object', got: r }, 'must be an object');
  onlyKeys(r, 'vmm.resources', ['cpuPerVcpu', 'overheadMiB', 'swapMiB', 'pids', 'io']);
  const d = DEFAULT_RESOURCES;
  const cpu = r.cpuPerVcpu ?? d.cpuPerVcpu;
  if (typeof cpu !== 'number' || !(cpu > 0) || cpu > 64) throw invalidArgument({ field: 'vmm.resources.cpuPerVcpu', reason: 'range', got: cpu }, 'must be a number in (0, 64]');
  const io = r.io ?? {};
  if (!isObject(io)) throw invalidArgument({ field: 'vmm.resources.io', reason: 'type', expected: 'object', got: io }, 'must be an object');
  onlyKeys(io, 'vmm.resources.io', ['readBps', 'writeBps', 'readIops', 'writeIops']);
  return {
    user: user as string | null,
    cgroups: v.cgroups ?? true,
    resources: {
      cpuPerVcpu: cpu,
      overheadMiB: validInt(r.overheadMiB ?? d.overheadMiB, 'vmm.resources.overheadMiB', 0, 1024 * 1024),
      swapMiB: validInt(r.swapMiB ?? d.swapMiB, 'vmm.resources.swapMiB', 0, 1024 * 1024),
      pids: validInt(r.pids ?? d.pids, 'vmm.resources.pids', 16, 4_194_304),
      io: Object.fromEntries(Object.entries(io).map(([k, n]) => [k, validInt(n, `vmm.resources.io.${k}`, 1, 2 ** 50)])),
    },
  };
}
