#!/usr/bin/env node
// A FAKE Firecracker, for tests only: no Firecracker binary can run on the machines Hangar is developed on. It
// serves the API over a Unix socket and enforces what the real VMM enforces at that layer — the published
// definition's schemas for its version (unknown fields rejected, as serde deny_unknown_fields does), the
// preboot/runtime split, snapshot-load only before boot-specific resources, snapshot-create only when Paused —
// so the driver's conversation can be tested end to end. No guest runs: the "console" says so.
//
// As a process (preferred; the driver spawns it as if it were `firecracker --api-sock PATH [--id ID]`):
//   node fake-firecracker.js --api-sock PATH [--id ID] | --version
//   env FAKE_FIRECRACKER_VERSION (1.9.1 | 1.13.1 | 1.16.1, default 1.16.1), FAKE_FIRECRACKER_FIXTURES (directory of
//   api-vX.yaml, default ../shared/fixtures/firecracker), FAKE_FIRECRACKER_TRACE (JSON-lines request log),
//   FAKE_FIRECRACKER_CTRL_ALT_DEL=ignore (guest without i8042: only signals stop it),
//   FAKE_FIRECRACKER_CONSOLE_ON_START (a line printed on the console at InstanceStart),
//   FAKE_FIRECRACKER_CHECK_TAP=1 (PUT network-interfaces fails unless /sys/class/net/<tap> exists, like opening it).
//   Invoked with --exec-file it is a FAKE jailer first (see fakeJailer), then the fake VMM "inside" the jail.
// In-process: startFakeFirecracker(options).
import { accessSync, appendFileSync, chownSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after } from 'node:test';
import { createServer } from 'node:http';
import { connect as netConnect, createServer as createNetServer, type Server as NetServer } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SHARED } from './env.js';
import { findOperation, loadFirecrackerApi, validateRequest } from './swagger.js';
import type { SwaggerDoc } from './swagger.js';

export type FakeState = 'Not started' | 'Running' | 'Paused';

export interface FakeTraceEntry {
  method: string;
  path: string;
  body: unknown;
  status: number;
  fault?: string;
  state: FakeState;
}

export interface FakeFirecrackerOptions {
  apiSock: string;
  id?: string;
  version?: string;
  fixturesDir?: string;
  tracePath?: string;
  ctrlAltDel?: 'exit' | 'ignore';
  consoleOnStart?: string;
  checkTap?: boolean;
  /** Console (the real VMM's stdout). */
  console?: (text: string) => void;
  /** The VMM "process" ends (guest reset, fatal restore error). Default: nothing (in-process use). */
  onExit?: (code: number) => void;
  /** As if chrooted here (FAKE jailer): API paths and the socket resolve under this directory. */
  root?: string;
  /**
   * The FAKE vsock: `CONNECT <port>` on the PUT /vsock socket is forwarded to the Unix socket this returns (a
   * `hangar-agent --listen-unix` standing in for the guest); null closes the connection, as Firecracker does when
   * nothing listens in the guest. Env: FAKE_FIRECRACKER_VSOCK_1024=PATH.
   */
  vsockBackend?: (port: number) => string | null;
}

export interface FakeFirecracker {
  readonly trace: FakeTraceEntry[];
  state(): FakeState;
  close(): Promise<void>;
}

export const FAKE_SNAPSHOT_MAGIC = 'hangar-fake-firecracker-snapshot';
const DEFAULT_FIXTURES = SHARED ? join(SHARED, 'fixtures', 'firecracker') : null;

class Fault extends Error {
  constructor(message: string, readonly fatal = false) {
    super(message);
  }
}

// Wording follows Firecracker's VmmActionError messages.
const NOT_POST_BOOT = 'The requested operation is not supported after starting the microVM.';
const NOT_PRE_BOOT = 'The requested operation is not supported before starting the microVM.';

function mustExist(path: string, what: string, mode = constants.R_OK): void {
  try {
    accessSync(path, mode);
  } catch (e) {
    throw new Fault(`${what}: cannot open ${path}: ${(e as NodeJS.ErrnoException).code}`);
  }
}

/** The FAKE vsock mux: host-initiated connections with Firecracker's `CONNECT <port>\n` / `OK <port>\n` handshake. */
function fakeVsock(path: string, backend: (port: number) => string | null): NetServer {
  let next = 1_073_741_824;
  const srv = createNetServer((c) => {
    let buf = Buffer.alloc(0);
    c.on('error', () => undefined);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) { if (buf.length > 32) c.destroy(); return; }
      c.off('data', onData);
      const m = /^CONNECT (\d+)$/.exec(buf.subarray(0, nl).toString('latin1'));
      const target = m ? backend(Number(m[1])) : null;
      if (!target) { c.destroy(); return; }
      const g = netConnect({ path: target });
      g.on('error', () => c.destroy());
      g.once('connect', () => {
        c.write(`OK ${next++}\n`);
        const rest = buf.subarray(nl + 1);
        if (rest.length) g.write(rest);
        c.pipe(g);
        g.pipe(c);
      });
      c.on('close', () => g.destroy());
    };
    c.on('data', onData);
  });
  srv.listen(path);
  return srv;
}

export function startFakeFirecracker(opts: FakeFirecrackerOptions): Promise<FakeFirecracker> {
  const version = opts.version ?? '1.16.1';
  const fixtures = opts.fixturesDir ?? DEFAULT_FIXTURES;
  if (!fixtures) throw new Error('fake-firecracker needs the API definitions (../shared/fixtures/firecracker is absent)');
  const doc: SwaggerDoc = loadFirecrackerApi(fixtures, version);
  const id = opts.id ?? 'anonymous-instance';
  // Paths in requests are as the VMM sees them; under a (fake) jail that is relative to its root.
  const host = (p: unknown): string => (opts.root ? join(opts.root, String(p)) : String(p));
  const out = opts.console ?? ((): void => undefined);
  const trace: FakeTraceEntry[] = [];

  let state: FakeState = 'Not started';
  let vsock: NetServer | undefined;
  const bindVsock = (uds: string): void => {
    vsock?.close();
    vsock = fakeVsock(uds, opts.vsockBackend ?? ((port) => process.env[`FAKE_FIRECRACKER_VSOCK_${port}`] ?? null));
  };
  let bootPath = false;
  let logPath: string | null = null;
  const config: {
    machine: Record<string, unknown>; boot?: Record<string, unknown>;
    drives: Map<string, Record<string, unknown>>; nets: Map<string, Record<string, unknown>>; entropy?: boolean; vsock?: Record<string, unknown>;
  } = { machine: { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false }, drives: new Map(), nets: new Map() };

  const log = (line: string): void => {
    if (logPath) appendFileSync(logPath, `[${id}:fc_api] ${line}\n`);
  };
  const exit = (code: number): void => {
    setTimeout(() => opts.onExit?.(code), 50);
  };

  const preboot = (): void => {
    if (state !== 'Not started') throw new Fault(NOT_POST_BOOT);
  };
  const postboot = (): void => {
    if (state === 'Not started') throw new Fault(NOT_PRE_BOOT);
  };

  function handle(method: string, template: string, params: Record<string, string>, body: unknown): { status: number; json?: unknown } {
    const b = (body ?? {}) as Record<string, unknown>;
    const key = `${method} ${template}`;
    switch (key) {
      case 'GET /':
        return { status: 200, json: { app_name: 'Firecracker', id, state, vmm_version: version } };
      case 'GET /version':
        return { status: 200, json: { firecracker_version: version } };
      case 'GET /machine-config':
        return { status: 200, json: config.machine };
      case 'PUT /logger':
        preboot();
        if (typeof b.log_path === 'string') mustExist(host(b.log_path), 'Logger error', constants.W_OK);
        logPath = typeof b.log_path === 'string' ? host(b.log_path) : logPath;
        return { status: 204 };
      case 'PUT /machine-config': {
        preboot();
        const vcpus = b.vcpu_count as number;
        if (b.smt && vcpus > 1 && vcpus % 2) throw new Fault('Machine config error: The vCPU number is invalid! The vCPU number can only be 1 or an even number when SMT is enabled.');
        if ((b.mem_size_mib as number) < 1) throw new Fault('Machine config error: The memory size (MiB) is invalid.');
        config.machine = { ...b };
        bootPath = true;
        return { status: 204 };
      }
      case 'PUT /boot-source':
        preboot();
        mustExist(host(b.kernel_image_path), 'Boot source error: The kernel file cannot be opened');
        config.boot = { ...b };
        bootPath = true;
        return { status: 204 };
      case 'PUT /drives/{drive_id}': {
        preboot();
        if (b.drive_id !== params.drive_id) throw new Fault('The id from the path does not match the id from the body!');
        if (b.is_root_device && [...config.drives.values()].some((d) => d.is_root_device && d.drive_id !== b.drive_id)) {
          throw new Fault('Drive config error: A root block device already exists!');
        }
        mustExist(host(b.path_on_host), 'Drive config error: Unable to open the block device backing file', b.is_read_only ? constants.R_OK : constants.R_OK | constants.W_OK);
        config.drives.set(b.drive_id as string, { ...b });
        bootPath = true;
        return { status: 204 };
      }
      case 'PUT /network-interfaces/{iface_id}': {
        preboot();
        if (b.iface_id !== params.iface_id) throw new Fault('The id from the path does not match the id from the body!');
        if (typeof b.guest_mac === 'string' && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(b.guest_mac)) {
          throw new Fault(`An error occurred when deserializing the json body of a request: invalid MAC address ${b.guest_mac}`);
        }
        if ([...config.nets.values()].some((n) => n.host_dev_name === b.host_dev_name && n.iface_id !== b.iface_id)) {
          throw new Fault(`Network interface error: The host device name ${String(b.host_dev_name)} is already in use.`);
        }
        if (opts.checkTap && !existsSync(`/sys/class/net/${String(b.host_dev_name)}/tun_flags`)) {
          throw new Fault(`Network interface error: Could not create the network device: Open tap device failed: ${String(b.host_dev_name)} is not a TAP in this network namespace`);
        }
        config.nets.set(b.iface_id as string, { ...b });
        bootPath = true;
        return { status: 204 };
      }
      case 'PUT /vsock': {
        preboot();
        const uds = host(b.uds_path);
        if (existsSync(uds)) throw new Fault(`Cannot create vsock device: the Unix socket ${String(b.uds_path)} exists (Address in use)`);
        bindVsock(uds);
        config.vsock = { ...b };
        bootPath = true;
        return { status: 204 };
      }
      case 'PUT /entropy':
        preboot();
        config.entropy = true;
        bootPath = true;
        return { status: 204 };
      case 'PUT /actions': {
        if (b.action_type === 'InstanceStart') {
          preboot();
          if (!config.boot) throw new Fault('Start microvm error: Cannot start microvm without kernel configuration.');
          state = 'Running';
          log('InstanceStart (fake: no guest runs)');
          out(`[fake-firecracker] InstanceStart: this is a fake VMM, no guest kernel runs\n[fake-firecracker] cmdline: ${String(config.boot.boot_args ?? '')}\n`);
          if (opts.consoleOnStart) out(`${opts.consoleOnStart}\n`);
          return { status: 204 };
        }
        if (b.action_type === 'SendCtrlAltDel') {
          postboot();
          if (state === 'Running' && opts.ctrlAltDel !== 'ignore') {
            out('[fake-firecracker] Ctrl-Alt-Del: the simulated guest resets; Firecracker exits\n');
            exit(0);
          }
          return { status: 204 };
        }
        postboot(); // FlushMetrics
        return { status: 204 };
      }
      case 'PATCH /vm':
        postboot();
        state = b.state === 'Paused' ? 'Paused' : 'Running';
        log(`vm ${String(b.state)}`);
        return { status: 204 };
      case 'PUT /snapshot/create': {
        postboot();
        if (state !== 'Paused') throw new Fault('Create snapshot error: the microVM must be paused to create a snapshot.');
        const snap = { magic: FAKE_SNAPSHOT_MAGIC, version, id, machine: config.machine, boot: config.boot, drives: [...config.drives.values()], nets: [...config.nets.values()], vsock: config.vsock };
        writeFileSync(host(b.snapshot_path), JSON.stringify(snap));
        writeFileSync(host(b.mem_file_path), `${FAKE_SNAPSHOT_MAGIC} memory (fake: ${String(config.machine.mem_size_mib)} MiB not written)\n`);
        return { status: 204 };
      }
      case 'PUT /snapshot/load': {
        preboot();
        if (bootPath) throw new Fault('Load snapshot error: Loading a microVM snapshot not allowed after configuring boot-specific resources.');
        const mem = (b.mem_backend as { backend_path?: string } | undefined)?.backend_path ?? (b.mem_file_path as string | undefined);
        if ((b.mem_backend === undefined) === (b.mem_file_path === undefined)) throw new Fault('Load snapshot error: exactly one of mem_backend and mem_file_path is required', true);
        let snap: { magic?: string; machine?: Record<string, unknown>; nets?: Record<string, unknown>[]; drives?: Record<string, unknown>[]; vsock?: Record<string, unknown> };
        try {
          snap = JSON.parse(readFileSync(host(b.snapshot_path), 'utf8')) as typeof snap;
          mustExist(host(mem), 'memory file');
        } catch (e) {
          throw new Fault(`Load snapshot error: Failed to restore from snapshot: ${(e as Error).message}`, true);
        }
        if (snap.magic !== FAKE_SNAPSHOT_MAGIC) throw new Fault('Load snapshot error: Failed to restore from snapshot: not a snapshot this fake wrote', true);
        // Like the real VMM: the block devices are reopened read-write at the paths the snapshot recorded.
        try {
          for (const d of snap.drives ?? []) mustExist(host(String(d.path_on_host)), `drive ${String(d.drive_id)}`, d.is_read_only ? constants.R_OK : constants.R_OK | constants.W_OK);
        } catch (e) {
          throw new Fault(`Load snapshot error: Failed to restore from snapshot: ${(e as Error).message}`, true);
        }
        // Like the real VMM: the vsock device binds its Unix socket again, where the snapshot recorded it unless
        // vsock_override (1.16.1) names another path; a path that exists fails the restore.
        if (snap.vsock) {
          const udsPath = String((b.vsock_override as { uds_path?: string } | undefined)?.uds_path ?? snap.vsock.uds_path);
          if (existsSync(host(udsPath))) throw new Fault(`Load snapshot error: Failed to restore from snapshot: Failed to restore vsock device: the Unix socket ${udsPath} exists (Address in use)`, true);
          bindVsock(host(udsPath));
          config.vsock = { ...snap.vsock, uds_path: udsPath };
        }
        config.machine = snap.machine ?? config.machine;
        state = b.resume_vm ? 'Running' : 'Paused';
        bootPath = true;
        return { status: 204 };
      }
      default:
        throw new Fault(`fake-firecracker does not implement ${key}`);
    }
  }

  const record = (e: FakeTraceEntry): void => {
    trace.push(e);
    if (opts.tracePath) appendFileSync(opts.tracePath, `${JSON.stringify(e)}\n`);
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const method = req.method ?? 'GET';
      const path = (req.url ?? '/').split('?')[0]!;
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      let status = 204;
      let json: unknown;
      let fatal = false;
      try {
        if (text.trim()) {
          try { body = JSON.parse(text); } catch (e) { throw new Fault(`An error occurred when deserializing the json body of a request: ${(e as Error).message}`); }
        }
        const found = findOperation(doc, method, path);
        if (!found) throw new Fault(`Invalid request method and/or path: ${method} ${path}.`);
        const errors = validateRequest(doc, method, path, body);
        if (errors.length) throw new Fault(`An error occurred when deserializing the json body of a request: ${errors.join('; ')}`);
        ({ status, json } = handle(method, found.template, found.params, body));
      } catch (e) {
        status = 400;
        fatal = e instanceof Fault && e.fatal;
        json = { fault_message: e instanceof Error ? e.message : String(e) };
      }
      record({ method, path, body, status, ...(status >= 400 ? { fault: (json as { fault_message: string }).fault_message } : {}), state });
      const payload = json === undefined ? '' : JSON.stringify(json);
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) });
      res.end(payload);
      if (fatal) exit(1); // Firecracker ends itself after a failed restore
    });
  };

  const sock = host(opts.apiSock);
  if (existsSync(sock)) return Promise.reject(new Error(`Failed to open the API socket at: ${opts.apiSock}. Address in use.`));
  const server: Server = createServer(onRequest);
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(sock, () => {
      resolvePromise({
        trace,
        state: () => state,
        close: () => new Promise<void>((r) => { vsock?.close(); server.close(() => r()); server.closeAllConnections(); }),
      });
    });
  });
}

function argValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  return args.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
}

/** The cgroup controllers the jailer knows a file's prefix for, by cgroup version (Firecracker's jailer/src/cgroup.rs). */
const FAKE_JAILER_CONTROLLERS = { 1: ['cpu', 'cpuset', 'memory', 'pids', 'blkio', 'cpuacct', 'hugetlb', 'net_cls', 'net_prio'], 2: ['cpu', 'cpuset', 'memory', 'pids', 'io', 'hugetlb'] } as const;

/**
 * The FAKE jailer's reading of its cgroup options, as the real one reads them: `--cgroup-version 1|2` (default 1),
 * `--parent-cgroup` (a relative path; default the exec file's name), repeated `--cgroup FILE=VALUE` whose FILE is
 * `<controller>.<param>` of a controller that version has. Throws what the jailer would refuse.
 */
export function fakeJailerCgroups(own: readonly string[], execName: string): { version: 1 | 2; parent: string; settings: { file: string; value: string }[] } {
  const v = argValue([...own], '--cgroup-version') ?? '1';
  if (v !== '1' && v !== '2') throw new Error(`fake jailer: invalid cgroup version ${v}`);
  const version = Number(v) as 1 | 2;
  const parent = argValue([...own], '--parent-cgroup') ?? execName;
  if (parent.startsWith('/') || parent.split('/').includes('..')) throw new Error(`fake jailer: invalid parent cgroup ${parent}`);
  const settings: { file: string; value: string }[] = [];
  own.forEach((a, i) => {
    if (a !== '--cgroup') return;
    const m = /^(([a-z_]+)\.[a-z_.]+)=(.+)$/s.exec(own[i + 1] ?? '');
    if (!m) throw new Error(`fake jailer: --cgroup takes <cgroup_file>=<value> (got ${JSON.stringify(own[i + 1])})`);
    if (!(FAKE_JAILER_CONTROLLERS[version] as readonly string[]).includes(m[2]!)) throw new Error(`fake jailer: cgroup v${version} has no controller ${m[2]}`);
    settings.push({ file: m[1]!, value: m[3]! });
  });
  return { version, parent, settings };
}

/**
 * FAKE jailer (invoked with --exec-file): builds <chroot-base>/<exec-file name>/<id>/root and hands it to the
 * FAKE Firecracker, chowns it, and drops to --uid/--gid like the real jailer, so staged files must really be
 * readable/writable by that user. It does not chroot, pivot_root, join --netns or set cgroups.
 */
function fakeJailer(args: string[]): { root: string; id: string; fcArgs: string[] } {
  const dash = args.indexOf('--');
  const own = dash >= 0 ? args.slice(0, dash) : args;
  const id = argValue(own, '--id');
  const exec = argValue(own, '--exec-file');
  const uid = Number(argValue(own, '--uid'));
  const gid = Number(argValue(own, '--gid'));
  if (!id || !exec || !Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error('fake jailer: --id, --exec-file, --uid and --gid are required');
  if (argValue(own, '--netns')) throw new Error('fake jailer: cannot join a network namespace');
  const cgroups = fakeJailerCgroups(own, basename(exec));
  // It checks its cgroup options like the real one but applies none; FAKE_JAILER_CGROUP_LOG records what it got.
  if (process.env.FAKE_JAILER_CGROUP_LOG) appendFileSync(process.env.FAKE_JAILER_CGROUP_LOG, `${JSON.stringify({ id, ...cgroups })}\n`);
  const root = join(argValue(own, '--chroot-base-dir') ?? '/srv/jailer', basename(exec), id, 'root');
  mkdirSync(root, { recursive: true });
  chownSync(root, uid, gid);
  process.setgid!(gid);
  process.setuid!(uid);
  return { root, id, fcArgs: dash >= 0 ? args.slice(dash + 1) : [] };
}

async function main(): Promise<void> {
  let args = process.argv.slice(2);
  const version = process.env.FAKE_FIRECRACKER_VERSION ?? '1.16.1';
  if (args.includes('--version')) {
    process.stdout.write(`Firecracker v${version}\n\n`);
    return;
  }
  let jail: { root: string; id: string } | null = null;
  try {
    if (args.includes('--exec-file')) {
      const j = fakeJailer(args);
      jail = j;
      args = j.fcArgs;
    }
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
  const apiSock = argValue(args, '--api-sock') ?? '/run/firecracker.socket';
  const id = jail?.id ?? argValue(args, '--id');
  try {
    await startFakeFirecracker({
      apiSock: jail ? apiSock : resolve(apiSock),
      version,
      ...(jail ? { root: jail.root } : {}),
      ...(id ? { id } : {}),
      ...(process.env.FAKE_FIRECRACKER_FIXTURES ? { fixturesDir: process.env.FAKE_FIRECRACKER_FIXTURES } : {}),
      ...(process.env.FAKE_FIRECRACKER_TRACE ? { tracePath: process.env.FAKE_FIRECRACKER_TRACE } : {}),
      ...(process.env.FAKE_FIRECRACKER_CONSOLE_ON_START ? { consoleOnStart: process.env.FAKE_FIRECRACKER_CONSOLE_ON_START } : {}),
      ctrlAltDel: process.env.FAKE_FIRECRACKER_CTRL_ALT_DEL === 'ignore' ? 'ignore' : 'exit',
      checkTap: process.env.FAKE_FIRECRACKER_CHECK_TAP === '1',
      console: (t) => process.stdout.write(t),
      onExit: (code) => process.exit(code),
    });
  } catch (e) {
    process.stderr.write(`fake-firecracker: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) void main();

/**
 * Writes an executable `firecracker` (or `jailer`) in dir that runs this fake, so a driver spawns it exactly like
 * the real binary.
 */
export function writeFakeFirecrackerBin(dir: string, name: 'firecracker' | 'jailer' = 'firecracker'): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const bin = join(dir, name);
  writeFileSync(bin, `#!/bin/sh\n# FAKE Firecracker for tests (test/support/fake-firecracker.ts)\nexec ${q(process.execPath)} ${q(fileURLToPath(import.meta.url))} "$@"\n`, { mode: 0o755 });
  return bin;
}

/**
 * For a test file: a temporary directory holding the FAKE Firecracker binary and a dummy kernel. Handles pushed to
 * `handles` are stopped, and the directory removed, after the file's tests.
 */
export function fakeFirecrackerWorkspace(prefix: string): { root: string; fakeBin: string; kernel: string; handles: { stop(o: { graceMs: number }): Promise<unknown> }[] } {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const fakeBin = writeFakeFirecrackerBin(root);
  const kernel = join(root, 'vmlinux');
  writeFileSync(kernel, 'not a kernel: the fake never boots it\n');
  const handles: { stop(o: { graceMs: number }): Promise<unknown> }[] = [];
  after(async () => {
    for (const h of handles) await h.stop({ graceMs: 100 }).catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  });
  return { root, fakeBin, kernel, handles };
}
