// The Firecracker VmmDriver: spawn `firecracker --api-sock` (directly, in a network namespace, or through the
// jailer) under the process supervisor, wait for the API, configure and boot over the socket, then
// pause/resume/status/stop through it. Adopt re-attaches through the pidfile and the socket.
import { AGENT_VSOCK_PORT, type GuestChannel } from '../../guest-protocol.js';
import { chmod, chown, copyFile, link, mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { HangarError, isHangarError } from '../../errors.js';
import { tailFile } from '../../util/tail.js';
import { runSteps } from '../../util/steps.js';
import { checkFiles } from '../../util/files.js';
import { sleep } from '../../util/timeout.js';
import type { DriverProbe, RestoreOptions, SavedState, VmmDriver, VmmHandle, VmmRunState } from '../driver.js';
import { VmCgroup } from '../cgroup/host.js';
import { deriveLimits, planLimits, type LimitsView } from '../cgroup/plan.js';
import { closeCgroup, type Confinement } from '../confine.js';
import { readPidFile, readProc, SupervisedProcess } from '../supervisor.js';
import type { ProcessIdentity, SpawnSpec } from '../supervisor.js';
import type { MachineSpec, ProcessExit } from '../types.js';
import type { InstanceInfo, LogLevel, SnapshotType } from './api-types.js';
import { FirecrackerApi } from './http.js';
import type { FirecrackerAction, VmmModel } from './actions.js';
import { hostPathInJail, IN_JAIL_SNAPSHOT, isOurVmm, planLaunch } from './launch.js';
import type { JailerCgroup, JailerOptions, LaunchPlan } from './launch.js';
import { gatherFacts, probeVerdict, resolveBinary } from './probe.js';
import type { HostFacts } from './probe.js';
import { bootSequence, loggerRequest, pauseRequest, resumeRequest, snapshotCreateRequest, snapshotLoadRequest } from './requests.js';
import type { SnapshotLoadInput } from './requests.js';
import { diskPathRefusal, FC_MEMORY_FILE, FC_STATE_FILES, FC_VMSTATE_FILE, saveFirecrackerState } from './snapshot.js';
import { apiVersionFor, hasField, VERIFIED_API_VERSIONS } from './version.js';
import type { ApiVersion } from './version.js';

/** The seam through which the driver starts and finds processes (the supervisor by default). */
export interface VmmLauncher {
  spawn(spec: SpawnSpec): Promise<SupervisedProcess>;
  adopt(pidFile: string, identity: ProcessIdentity): Promise<SupervisedProcess | null>;
}

export const supervisorLauncher: VmmLauncher = {
  spawn: (s) => SupervisedProcess.spawn(s),
  adopt: (p, i) => SupervisedProcess.adopt(p, i),
};

export interface FirecrackerDriverOptions {
  /** The firecracker binary; default FIRECRACKER_BIN, then PATH. */
  binary?: string;
  /** Run through the jailer (binary default JAILER_BIN, then PATH). */
  jailer?: Omit<JailerOptions, 'binary'> & { binary?: string };
  /** Target API version; default the version the VMM reports. A mismatch with the VMM fails the start. */
  apiVersion?: string;
  arch?: 'x86_64' | 'aarch64';
  logLevel?: LogLevel;
  launcher?: VmmLauncher;
  env?: NodeJS.ProcessEnv;
  /** What /proc/PID/exe shows for the VMM when it is not the binary itself (a test's fake runs as node). */
  identityBinary?: string;
  /** From spawn until GET / answers. */
  apiReadyTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Between SIGTERM and SIGKILL. */
  termGraceMs?: number;
  /** Probe facts source (tests). */
  facts?: () => Promise<HostFacts>;
  /** Cgroup limits (the jailer sets them, from the same per-VM limits QEMU gets); the user is the jailer's uid/gid. */
  confine?: Confinement;
}

/** The jailer's cgroup options for a VM: its limits as the jailer's --cgroup files, under Hangar's root. Pure. */
export function jailerCgroupFor(c: Confinement, spec: MachineSpec): JailerCgroup | undefined {
  if (!c.cgroups) return undefined;
  const l = c.cgroups;
  const writes = planLimits(l.version, deriveLimits(spec, c.resources, spec.resources), { swapAccounting: l.swapAccounting });
  return { version: l.version, parent: l.relRoot, writes: writes.map((w) => ({ file: w.file, value: w.value })) };
}

const DEFAULT_API_READY_MS = 5000;
/** Wait after SendCtrlAltDel. The guest needs CONFIG_SERIO_I8042 and CONFIG_KEYBOARD_ATKBD to notice it at all. */
const DEFAULT_STOP_GRACE_MS = 3000;
const DEFAULT_TERM_GRACE_MS = 3000;
const POLL_MS = 20;

/** Stages the files a jailed VMM must find inside its chroot; returns the undo. */
async function stageJail(plan: LaunchPlan): Promise<() => Promise<void>> {
  const jail = plan.jail!;
  const { uid, gid } = jail.owner;
  await mkdir(jail.chrootDir, { recursive: true });
  const undo = (): Promise<void> => removeJail(plan);
  try {
    for (const f of jail.files) {
      if (f.how === 'copy') await copyFile(f.from!, f.to);
      else if (f.how === 'create') await writeFile(f.to, '', { flag: 'a' });
      else {
        try {
          await link(f.from!, f.to);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EXDEV') {
            throw new HangarError('VMM_START_FAILED', `cannot hard-link ${f.from} into the jail at ${f.to}: different filesystems; put the jailer chroot base on the filesystem that holds the VM disks`, { from: f.from, to: f.to });
          }
          throw e;
        }
      }
      if (f.how === 'link-shared') {
        // One inode shared by every clone of the snapshot: root keeps it, the jail group may only read it.
        await chown(f.to, 0, gid);
        await chmod(f.to, 0o640);
        continue;
      }
      // The VMM runs as uid:gid once the jailer drops privileges. For the hard-linked disk this changes the
      // original's owner too (one inode): the unprivileged VMM must be able to write it.
      await chown(f.to, uid, gid);
    }
  } catch (e) {
    await undo();
    throw e;
  }
  return undo;
}

/** rename(2), or copy and delete across filesystems (the chroot base need not share one with the state). */
async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    await copyFile(from, to);
    await rm(from, { force: true });
  }
}

async function removeJail(plan: LaunchPlan): Promise<void> {
  const jail = plan.jail;
  // Only ever the per-VM directory the plan computed, never a parent.
  if (jail && jail.chrootDir.startsWith(jail.jailDir + sep)) await rm(jail.jailDir, { recursive: true, force: true });
}

async function cleanupAfterExit(plan: LaunchPlan): Promise<void> {
  await rm(plan.apiSocket, { force: true });
  await rm(plan.vsockSocket, { force: true });
  await removeJail(plan);
}

export class FirecrackerHandle implements VmmHandle {
  readonly kind = 'firecracker' as const;
  readonly exited: Promise<ProcessExit>;
  /** hangar-agent over the VM's vsock device (its host-side Unix socket, `CONNECT 1024`). */
  readonly guestChannel: GuestChannel;

  constructor(
    readonly spec: MachineSpec,
    readonly api: FirecrackerApi,
    readonly process: SupervisedProcess,
    readonly plan: LaunchPlan,
    private readonly termGraceMs: number,
    /** The jailer's `<parent>/<id>` cgroup, removed after the exit. */
    readonly cgroup: VmCgroup | null = null,
  ) {
    this.guestChannel = { kind: 'vsock', path: plan.vsockSocket, port: AGENT_VSOCK_PORT };
    this.exited = process.exited.then(async (e) => {
      await cleanupAfterExit(this.plan).catch(() => undefined);
      if (cgroup) e = await closeCgroup(cgroup, e);
      // Firecracker exits 0 when the guest resets or powers off (reboot=k, panic=N): the guest ended it.
      return e.by === 'unknown' && e.code === 0 ? { ...e, by: 'guest' } : e;
    });
  }

  get pid(): number {
    return this.process.pid;
  }

  get limits(): LimitsView | null {
    return this.cgroup?.view ?? null;
  }

  get apiVersion(): ApiVersion {
    return this.api.api;
  }

  async pause(): Promise<void> {
    await this.api.send(pauseRequest());
  }

  async resume(): Promise<void> {
    await this.api.send(resumeRequest());
  }

  saveState(dir: string): Promise<SavedState> {
    return saveFirecrackerState(this, dir);
  }

  /** The guest clock is moved on by snapshot-load (clock_realtime) where the VMM can; nothing to send. */
  afterResume(): Promise<null> {
    return Promise.resolve(null);
  }

  /**
   * Needs Paused. Writes the snapshot to these host paths. Jailed, the VMM can only write inside its chroot: it
   * writes files prepared there for the jail user, which are then moved out and handed to root (0600).
   */
  async snapshotCreate(p: { snapshotPath: string; memFilePath: string; type?: SnapshotType }): Promise<void> {
    const jail = this.plan.jail;
    if (!jail) {
      await this.api.send(snapshotCreateRequest(p));
      return;
    }
    const inside = { snapshotPath: hostPathInJail(jail, IN_JAIL_SNAPSHOT.snapshotPath), memFilePath: hostPathInJail(jail, IN_JAIL_SNAPSHOT.memFilePath) };
    try {
      for (const f of Object.values(inside)) {
        await writeFile(f, '', { mode: 0o600 });
        await chown(f, jail.owner.uid, jail.owner.gid);
      }
      await this.api.send(snapshotCreateRequest({ ...p, ...IN_JAIL_SNAPSHOT }));
      for (const k of ['snapshotPath', 'memFilePath'] as const) {
        await moveFile(inside[k], p[k]);
        await chown(p[k], 0, 0);
        await chmod(p[k], 0o600);
      }
    } finally {
      for (const f of Object.values(inside)) await rm(f, { force: true });
    }
  }

  async status(): Promise<VmmRunState> {
    if (!this.process.alive) return 'stopped';
    try {
      const info = await this.api.describe();
      return info.state === 'Paused' ? 'paused' : info.state === 'Running' ? 'running' : 'stopped';
    } catch (e) {
      if (!this.process.alive) return 'stopped';
      throw e;
    }
  }

  async stop(opts: { graceMs?: number } = {}): Promise<ProcessExit> {
    if (!this.process.alive) return this.exited;
    this.process.noteCause('hangar');
    await this.api.describe().catch(() => undefined); // another handle may have paused it
    // A paused guest cannot react to Ctrl-Alt-Del; go straight to signals then.
    if (this.api.arch === 'x86_64' && this.api.model.state === 'Running') {
      const sent = await this.api.send({ kind: 'send-ctrl-alt-del' }).then(() => true, () => false);
      if (sent && (await this.process.waitExit(opts.graceMs ?? DEFAULT_STOP_GRACE_MS))) return this.exited;
    }
    await this.process.terminate({ graceMs: this.termGraceMs });
    return this.exited;
  }
}

export class FirecrackerDriver implements VmmDriver {
  readonly kind = 'firecracker' as const;
  readonly stateFiles = FC_STATE_FILES;
  private readonly launcher: VmmLauncher;

  constructor(private readonly opts: FirecrackerDriverOptions = {}) {
    this.launcher = opts.launcher ?? supervisorLauncher;
  }

  async probe(): Promise<DriverProbe> {
    try {
      const facts = await (this.opts.facts ?? (() => gatherFacts({
        ...(this.opts.binary ? { binary: this.opts.binary } : {}),
        ...(this.opts.env ? { env: this.opts.env } : {}),
        jailer: this.opts.jailer !== undefined,
        ...(this.opts.jailer?.binary ? { jailerBinary: this.opts.jailer.binary } : {}),
      })))();
      return probeVerdict(facts);
    } catch (e) {
      return { kind: 'firecracker', available: false, reason: `probe failed: ${e instanceof Error ? e.message : String(e)}` };
    }
  }

  /** The cgroup the jailer made for a jailed VMM (`<Hangar's root>/<id>`), to be removed after its exit. */
  private jailCgroup(plan: LaunchPlan, spec: MachineSpec): VmCgroup | null {
    const c = this.opts.confine;
    if (!plan.jail || !c?.cgroups) return null;
    // The jailer names it after the id alone.
    return new VmCgroup(c.cgroups, spec.id, new Map([...c.cgroups.roots].map(([k, r]) => [k, join(r, spec.id)])), deriveLimits(spec, c.resources, spec.resources));
  }

  private async binaries(): Promise<{ firecracker: string; jailer?: JailerOptions }> {
    const env = this.opts.env ?? process.env;
    const fc = this.opts.binary ? { binary: this.opts.binary, source: 'option' } : await resolveBinary('FIRECRACKER_BIN', 'firecracker', env);
    if (!fc.binary) throw new HangarError('VMM_NOT_AVAILABLE', `no Firecracker binary: ${fc.source}`, { source: fc.source });
    if (!this.opts.jailer) return { firecracker: fc.binary };
    const jb = this.opts.jailer.binary ? { binary: this.opts.jailer.binary, source: 'option' } : await resolveBinary('JAILER_BIN', 'jailer', env);
    if (!jb.binary) throw new HangarError('VMM_NOT_AVAILABLE', `jailer mode, but no jailer binary: ${jb.source}`, { source: jb.source });
    return { firecracker: fc.binary, jailer: { ...this.opts.jailer, binary: jb.binary } };
  }

  private identity(plan: LaunchPlan): ProcessIdentity {
    return { ...plan.identity, ...(this.opts.identityBinary ? { binary: this.opts.identityBinary } : {}) };
  }

  /** The API version to speak to a VMM that reports `reported`. Throws when it contradicts the configured one. */
  private targetApi(reported: string): ApiVersion {
    const actual = apiVersionFor(reported);
    if (this.opts.apiVersion && apiVersionFor(this.opts.apiVersion) !== actual) {
      throw new HangarError('VMM_START_FAILED', `configured for Firecracker API ${apiVersionFor(this.opts.apiVersion)} but the binary reports ${reported} (API ${actual})`, {
        configured: this.opts.apiVersion, reported,
      });
    }
    return actual;
  }

  async start(spec: MachineSpec): Promise<VmmHandle> {
    return this.startFirecracker(spec);
  }

  /** Firecracker reopens the disk where its snapshot recorded it: a VM that would see it elsewhere is refused. */
  async restoreRefusal(spec: MachineSpec, opts: RestoreOptions = {}): Promise<HangarError | null> {
    return diskPathRefusal(opts.diskPathInVmm, (await this.plan(spec)).vmmPaths.rootfsPath);
  }

  async restore(spec: MachineSpec, dir: string, opts: RestoreOptions = {}): Promise<FirecrackerHandle> {
    if (opts.files) await checkFiles(dir, opts.files);
    const refused = await this.restoreRefusal(spec, opts);
    if (refused) throw refused;
    const probe = await this.probe();
    // The guest clock jumps forward by the time spent saved, where the VMM can do it (clock_realtime, 1.16.1+).
    const clockRealtime = probe.version ? hasField(apiVersionFor(probe.version), 'snapshot-load.clock_realtime') : false;
    const ownVsock = probe.version ? hasField(apiVersionFor(probe.version), 'snapshot-load.vsock_override') : false;
    return this.startFirecracker(spec, {
      restore: { snapshotPath: join(dir, FC_VMSTATE_FILE), memFilePath: join(dir, FC_MEMORY_FILE), resume: false, ...(clockRealtime ? { clockRealtime: true } : {}) },
      ownVsock,
    });
  }

  /**
   * start() with the concrete handle type (snapshot calls, API journal). With `restore`, the fresh process loads a
   * snapshot instead of cold-booting: only the logger precedes the load, and the VM is Paused unless `resume`.
   */
  async startFirecracker(spec: MachineSpec, opts: { restore?: SnapshotLoadInput; ownVsock?: boolean } = {}): Promise<FirecrackerHandle> {
    const bins = await this.binaries();
    const restoreFiles = opts.restore ? { snapshotPath: opts.restore.snapshotPath, memFilePath: opts.restore.memFilePath } : undefined;
    const cgroup = bins.jailer && this.opts.confine ? jailerCgroupFor(this.opts.confine, spec) : undefined;
    const jailer = bins.jailer ? { ...bins.jailer, ...(cgroup ? { cgroup } : {}) } : undefined;
    const plan = planLaunch(spec, { binary: bins.firecracker, ...(jailer ? { jailer } : {}), ...(restoreFiles ? { restore: restoreFiles } : {}) });
    // Jailed, the VMM loads the state from the copies staged in its chroot. Where the VMM can be told (1.16.1), its
    // vsock socket is this VM's own, not the one the snapshot recorded (an unjailed VM's run directory is its own).
    const staged = opts.restore && plan.jail ? { ...opts.restore, ...IN_JAIL_SNAPSHOT } : opts.restore;
    const load = staged && opts.ownVsock ? { ...staged, vsockPath: plan.vmmPaths.vsockPath } : staged;
    const conversation = (api: ApiVersion): FirecrackerAction[] => load
      ? [loggerRequest(plan.vmmPaths.logPath, this.opts.logLevel), snapshotLoadRequest(load, api)]
      : bootSequence(spec, plan.vmmPaths, api, this.logOpts());
    // Validate the whole conversation before any side effect (re-built below for the version that answers).
    conversation(this.opts.apiVersion ? apiVersionFor(this.opts.apiVersion) : VERIFIED_API_VERSIONS[VERIFIED_API_VERSIONS.length - 1]!);

    const ctx: { proc?: SupervisedProcess; api?: FirecrackerApi; info?: InstanceInfo } = {};
    const exitedEarly = (): Promise<never> => ctx.proc!.exited.then(async (e) => {
      const why = (await tailFile(plan.consoleLogPath, 8)).trim() || 'no output';
      throw new HangarError('VMM_START_FAILED', `firecracker exited during start (${e.signal ?? `code ${e.code}`}): ${why}`, { code: e.code, signal: e.signal });
    });
    const steps = [
      {
        name: 'prepare run directory',
        run: async (): Promise<(() => Promise<void>) | void> => {
          await mkdir(dirname(plan.pidfile), { recursive: true });
          await mkdir(dirname(plan.consoleLogPath), { recursive: true });
          const live = await this.liveProcess(plan, spec);
          if (live) throw new HangarError('CONFLICT', `Firecracker for ${spec.id} is already running (pid ${live}): adopt it instead`, { pid: live, id: spec.id });
          // Firecracker refuses to bind over an existing socket file; a stale one is from a dead process.
          await rm(plan.apiSocket, { force: true });
          await rm(plan.vsockSocket, { force: true }); // the VMM refuses a vsock path that exists
          if (plan.jail) {
            await removeJail(plan); // a dead VMM's jail: its hard links would make staging fail
            return stageJail(plan);
          }
          await (await open(plan.logFile, 'a')).close(); // the logger opens its file, it never creates it
        },
      },
      {
        name: 'spawn firecracker',
        run: async (): Promise<() => Promise<void>> => {
          ctx.proc = await this.launcher.spawn({
            command: plan.command, args: plan.args, logPath: plan.consoleLogPath, pidFile: plan.pidfile,
            ...(plan.netns ? { netns: plan.netns } : {}),
            ...(this.opts.env ? { env: this.opts.env } : {}),
          });
          return async () => {
            await ctx.proc!.terminate({ graceMs: 1000 });
            await cleanupAfterExit(plan);
          };
        },
      },
      {
        name: 'wait for the API socket',
        run: async (): Promise<void> => {
          ctx.info = await Promise.race([this.waitForApi(plan.apiSocket, () => ctx.proc!.alive), exitedEarly()]);
        },
      },
      {
        name: 'configure and boot',
        run: async (): Promise<void> => {
          const api = this.newApi(plan.apiSocket, this.targetApi(ctx.info!.vmm_version));
          ctx.api = api;
          for (const action of conversation(api.api)) {
            await Promise.race([api.send(action), exitedEarly()]);
          }
        },
      },
    ];
    try {
      await runSteps(steps, ctx);
    } catch (e) {
      if (isHangarError(e, 'VMM_API_ERROR')) {
        throw new HangarError('VMM_START_FAILED', `Firecracker refused ${String(e.details.action)}: ${e.message}`, {
          ...e.details, console: await tailFile(plan.consoleLogPath, 8),
        }, { cause: e });
      }
      throw e;
    }
    return new FirecrackerHandle(spec, ctx.api!, ctx.proc!, plan, this.opts.termGraceMs ?? DEFAULT_TERM_GRACE_MS, this.jailCgroup(plan, spec));
  }

  /** The pid of a live VMM of this plan (exact argv match, not just the supervisor's markers), else null. */
  private async liveProcess(plan: LaunchPlan, spec: MachineSpec): Promise<number | null> {
    const pid = await readPidFile(plan.pidfile);
    if (pid === null) return null;
    const info = await readProc(pid);
    return info && info.stat?.state !== 'Z' && isOurVmm(plan, spec, info.argv) ? pid : null;
  }

  async adopt(spec: MachineSpec): Promise<VmmHandle | null> {
    return this.adoptFirecracker(spec);
  }

  /**
   * The launch plan of a spec under this driver's options, for its paths and identity (which paths the VMM sees,
   * where its jail is). Needs no binary: one may be gone from PATH since the VMM started.
   */
  async plan(spec: MachineSpec): Promise<LaunchPlan> {
    const env = this.opts.env ?? process.env;
    const binary = this.opts.binary ?? (await resolveBinary('FIRECRACKER_BIN', 'firecracker', env)).binary ?? 'firecracker';
    const jailer = this.opts.jailer ? { ...this.opts.jailer, binary: this.opts.jailer.binary ?? 'jailer' } : undefined;
    return planLaunch(spec, { binary, ...(jailer ? { jailer } : {}) });
  }

  async adoptFirecracker(spec: MachineSpec): Promise<FirecrackerHandle | null> {
    const plan = await this.plan(spec);
    const proc = (await this.liveProcess(plan, spec)) === null ? null : await this.launcher.adopt(plan.pidfile, this.identity(plan));
    if (!proc) {
      await cleanupAfterExit(plan).catch(() => undefined);
      return null;
    }
    const info = await Promise.race([this.waitForApi(plan.apiSocket, () => proc.alive), proc.exited.then(() => null)]);
    if (!info || info.id !== spec.id) {
      // Gone meanwhile, or the socket answers for another instance: nothing of ours to re-attach to.
      proc.release();
      return null;
    }
    if (info.state === 'Not started') {
      // A start that died half-way: nothing to re-attach to, and the process would idle forever.
      await proc.terminate({ graceMs: 1000 });
      await cleanupAfterExit(plan).catch(() => undefined);
      return null;
    }
    const api = this.newApi(plan.apiSocket, this.targetApi(info.vmm_version), { state: info.state, bootConfigured: true });
    return new FirecrackerHandle(spec, api, proc, plan, this.opts.termGraceMs ?? DEFAULT_TERM_GRACE_MS, this.jailCgroup(plan, spec));
  }

  private logOpts(): { logLevel?: LogLevel } {
    return this.opts.logLevel ? { logLevel: this.opts.logLevel } : {};
  }

  private newApi(socket: string, api: ApiVersion, model?: VmmModel): FirecrackerApi {
    return new FirecrackerApi(socket, {
      api, arch: this.opts.arch ?? (process.arch === 'arm64' ? 'aarch64' : 'x86_64'),
      ...(this.opts.requestTimeoutMs ? { timeoutMs: this.opts.requestTimeoutMs } : {}),
      ...(model ? { model } : {}),
    });
  }

  /** Polls GET / until the VMM answers with an InstanceInfo. */
  private async waitForApi(socket: string, alive: () => boolean): Promise<InstanceInfo> {
    const limit = this.opts.apiReadyTimeoutMs ?? DEFAULT_API_READY_MS;
    const deadline = Date.now() + limit;
    // GET / has the same shape in every verified version.
    const probeApi = this.newApi(socket, VERIFIED_API_VERSIONS[0]);
    let last: unknown;
    while (Date.now() < deadline && alive()) {
      try {
        return await probeApi.describe();
      } catch (e) {
        last = e;
        await sleep(POLL_MS);
      }
    }
    throw new HangarError('VMM_START_FAILED', `the Firecracker API at ${socket} did not answer within ${limit} ms: ${last instanceof Error ? last.message : String(last)}`, { socket });
  }
}
