// The QEMU microvm driver: same virtio-mmio device model as Firecracker, TCG where KVM does not really work.
// start = build argv (pure, validated) → run directory, disk and console handed to the VMM user → its cgroup
// with the VM's limits → spawn supervised (inside spec.netns if set, dropped to the VMM user by setpriv, under
// QEMU's seccomp sandbox, CPUs stopped) → moved into its cgroup → QMP answers → `cont`.
// Stop escalates: system_powerdown → QMP quit → SIGTERM → SIGKILL to the process group.
// Guest RAM (memoryDir set): a VM booted or restored from its own state gets a shared RAM file (tmpfs, one per VM,
// removed when QEMU ends), so a golden snapshot of it can copy the RAM beside a device-state-only stream; a clone
// maps the snapshot's copy privately (see state.ts). QEMU 7.2 opens that file read-write even for share=off (8.2
// falls back to read-only), so the copy is the VMM group's like a disk (0660); Hangar itself never writes it.
import type { GuestChannel } from '../../guest-protocol.js';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HangarError, isHangarError } from '../../errors.js';
import { run, which } from '../../util/exec.js';
import { chooseAccel, qemuKvmCheck, type Accel, type AccelChoice, type KvmCheck } from '../accel.js';
import { tail } from '../console.js';
import { checkFiles } from '../../util/files.js';
import type { DriverProbe, RestoreOptions, ResumeSync, SavedState, VmmDriver, VmmHandle, VmmRunState } from '../driver.js';
import type { CgroupUsage, VmCgroup } from '../cgroup/host.js';
import type { LimitsView } from '../cgroup/plan.js';
import { adoptedCgroup, closeCgroup, dropPrivileges, ensureTraversable, findSetpriv, handOver, prepareRunDir, vmCgroup, type Confinement } from '../confine.js';
import { SupervisedProcess, verifyProcess, readPidFile, type ProcessIdentity } from '../supervisor.js';
import type { MachineSpec, ProcessExit } from '../types.js';
import { buildQemuArgv, qmpSocketArg } from './argv.js';
import { copyRamFile, makeSharedMemory, QEMU_MEMORY_FILE, sharedMemoryPath } from './memory.js';
import { sendResumeSync } from './agent.js';
import { qemuRunPaths, type QemuRunPaths } from './paths.js';
import { connectQmpWhenReady, QmpClient, type QmpEvent } from './qmp.js';
import { agentListening, restoreQemuState, saveQemuState } from './state.js';

/** The one file a QEMU guest's saved state is (a migration stream). */
export const QEMU_STATE_FILE = 'state.bin';
export { DEFAULT_MEMORY_DIR, QEMU_MEMORY_FILE } from './memory.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

export interface QemuDriverOptions {
  /** Binary path; default: qemu-system-x86_64 from PATH. */
  binary?: string;
  /** Force an accelerator (else HANGAR_ACCEL, else the probe decides). */
  accel?: Accel;
  env?: NodeJS.ProcessEnv;
  /** How long QEMU may take to answer on QMP after spawn. */
  startTimeoutMs?: number;
  qmpTimeoutMs?: number;
  /**
   * Give guests the agent channel and a virtio-rng device: what a restored guest needs to resync its clock and
   * entropy (src/snapshot/agent.ts). Off by default (the plain device set); the controller turns it on.
   */
  guestAgent?: boolean;
  /** QEMU's seccomp sandbox (-sandbox QEMU_SANDBOX); default on. */
  sandbox?: boolean;
  /** The VMM user and cgroup limits (src/vmm/confine.ts); none: QEMU runs as the controller's user, unlimited. */
  confine?: Confinement;
  /** Bench/debug only: also a qemu-guest-agent port (qga.sock in the run directory), with guestAgent. */
  qemuGuestAgent?: boolean;
  /**
   * The directory of the VMs' shared RAM files (one `<id>.ram` per VM), default DEFAULT_MEMORY_DIR; null:
   * anonymous RAM (snapshots then carry the RAM in their stream and clones share nothing).
   */
  memoryDir?: string | null;
}

export interface QemuStartOptions {
  /**
   * Start waiting for a migration stream instead of booting ("unix:PATH": QEMU listens there; the caller feeds it).
   * The guest stays paused once the stream is loaded.
   */
  incoming?: string;
  /** Overrides the driver's guestAgent: a restore must recreate the device set the state was saved with. */
  guestAgent?: boolean;
  /** A clone's RAM: this file mapped privately (else the VM's own shared RAM file, if the driver has memoryDir). */
  privateMemory?: string;
}

/** How long a guest gets to end itself after Ctrl-Alt-Del before QMP quit. */
const DEFAULT_GRACE_MS = 3000;

export class QemuHandle implements VmmHandle {
  readonly kind = 'qemu' as const;
  readonly exited: Promise<ProcessExit>;
  /** hangar-agent's virtio-serial port, with the agent channel (src/agent/PROTOCOL.md). */
  readonly guestChannel: GuestChannel | null;
  private qmp: QmpClient;

  constructor(
    readonly spec: MachineSpec,
    readonly process: SupervisedProcess,
    qmp: QmpClient,
    readonly paths: QemuRunPaths,
    /** The accelerator this QEMU was started with (unknown for an adopted one). */
    readonly accel: AccelChoice | null,
    /** Spawn to QMP answering, ms (0 for an adopted one). */
    readonly startMs: number,
    /** Started with the agent channel and virtio-rng (part of the device set a snapshot of it needs). */
    readonly guestAgent: boolean,
    /** Its cgroup (removed once it has exited), and the user it runs as. */
    readonly cgroup: VmCgroup | null = null,
    readonly socketOwner: { uid: number; gid: number } | null = null,
    /** Its own shared RAM file (null: anonymous RAM, or a clone's private mapping of a snapshot's). */
    readonly sharedMemory: string | null = null,
  ) {
    this.qmp = qmp;
    this.guestChannel = guestAgent ? { kind: 'unix', path: paths.guestSocket } : null;
    this.watch(qmp);
    this.exited = process.exited.then(async (e) => {
      this.qmp.close();
      if (cgroup) e = await closeCgroup(cgroup, e);
      // After a SIGKILL QEMU cannot remove its socket; a stale one would mislead the next start.
      await rm(paths.qmpSocket, { force: true }).catch(() => undefined);
      await rm(paths.agentSocket, { force: true }).catch(() => undefined);
      await rm(paths.guestSocket, { force: true }).catch(() => undefined);
      if (sharedMemory) await rm(sharedMemory, { force: true }).catch(() => undefined);
      return e;
    });
  }

  get pid(): number {
    return this.process.pid;
  }

  get limits(): LimitsView | null {
    return this.cgroup?.view ?? null;
  }

  async usage(): Promise<CgroupUsage | null> {
    return this.cgroup ? this.cgroup.usage() : null;
  }

  /** QEMU reports who shut the machine down; a guest-initiated end (poweroff, reboot, panic) is the guest's. */
  private watch(qmp: QmpClient): void {
    qmp.onEvent((e: QmpEvent) => {
      if (e.event === 'SHUTDOWN' && e.data?.guest === true) this.process.noteCause('guest');
    });
  }

  /** The live QMP connection, reconnected if it dropped while QEMU still runs (e.g. for snapshots later). */
  async client(): Promise<QmpClient> {
    if (!this.process.alive) throw new HangarError('VMM_NOT_ALLOWED_IN_STATE', `QEMU ${this.pid} has exited`, { pid: this.pid, exit: this.process.exit });
    if (this.qmp.isClosed) {
      this.qmp = await QmpClient.connect(this.paths.qmpSocket, { timeoutMs: 5000 });
      this.watch(this.qmp);
    }
    return this.qmp;
  }

  /** A raw QMP command (volume slots: src/volume/plan.ts). */
  async monitor(command: string, args?: Record<string, unknown>): Promise<unknown> {
    return (await this.client()).execute(command, args);
  }

  /** Lets go without stopping anything (controller shutdown): QEMU keeps running and can be adopted later. */
  release(): void {
    this.qmp.close();
    this.process.release();
  }

  async pause(): Promise<void> {
    await (await this.client()).stop();
  }

  /**
   * shareMemory (golden snapshots): with a shared RAM file, the stream leaves the RAM out and the file is copied
   * (sparse) beside it while the guest is still paused; without one, or for hibernation, the stream carries it.
   */
  async saveState(dir: string, opts: { shareMemory?: boolean } = {}): Promise<SavedState> {
    const t0 = performance.now();
    const share = !!opts.shareMemory && this.sharedMemory !== null;
    const r = await saveQemuState(this, join(dir, QEMU_STATE_FILE), { ignoreShared: share });
    const files = { [QEMU_STATE_FILE]: { sha256: r.sha256, size: r.bytes } };
    if (share) {
      const copy = join(dir, QEMU_MEMORY_FILE);
      Object.assign(files, { [QEMU_MEMORY_FILE]: await copyRamFile(this.sharedMemory!, copy, this.socketOwner) });
    }
    return { files, vmmVersion: (await this.client()).version, guestAgent: this.guestAgent, ms: Math.round(performance.now() - t0) };
  }

  /** The clock and entropy resync through the agent channel, if the guest holds it open (an older image may not). */
  async afterResume(opts: { hostname?: string } = {}): Promise<ResumeSync> {
    if (!(await agentListening(this))) return { sentAt: 0, guestTime: null, agent: false };
    return { ...(await sendResumeSync(this.paths.agentSocket, { timeoutMs: 5000, ...opts })), agent: true };
  }

  async resume(): Promise<void> {
    await (await this.client()).cont();
  }

  async status(): Promise<VmmRunState> {
    if (!this.process.alive) return 'stopped';
    let s;
    try {
      s = await (await this.client()).queryStatus();
    } catch (e) {
      if (!this.process.alive) return 'stopped';
      throw e;
    }
    if (s.running) return 'running';
    // The guest cannot continue from these without a reset; with -no-reboot QEMU is about to exit anyway.
    if (['shutdown', 'guest-panicked', 'internal-error'].includes(s.status)) return 'stopped';
    return 'paused';
  }

  /**
   * Ctrl-Alt-Del through the i8042 (what Firecracker's SendCtrlAltDel does; the guest reboots, and -no-reboot
   * turns that into an exit) plus system_powerdown for ACPI guests; then QMP quit; then SIGTERM → SIGKILL.
   */
  async stop(opts: { graceMs?: number } = {}): Promise<ProcessExit> {
    if (this.process.exit) return this.exited;
    this.process.noteCause('hangar');
    const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
    const qmp = await this.client().catch(() => null);
    if (qmp && graceMs > 0) {
      const keys = ['ctrl', 'alt', 'delete'].map((k) => ({ type: 'qcode', data: k }));
      const asked = await Promise.allSettled([qmp.execute('send-key', { keys }), qmp.systemPowerdown()]);
      if (asked.some((r) => r.status === 'fulfilled') && (await this.process.waitExit(graceMs))) return this.exited;
    }
    if (qmp && !qmp.isClosed) {
      try {
        await qmp.quit();
        if (await this.process.waitExit(3000)) return this.exited;
      } catch { /* fall through to signals */ }
    }
    await this.process.terminate({ graceMs: 3000 });
    return this.exited;
  }
}

export class QemuDriver implements VmmDriver {
  readonly kind = 'qemu' as const;
  readonly stateFiles = [QEMU_STATE_FILE, QEMU_MEMORY_FILE] as const;
  private binaryPath: string | null = null;
  /** Whether KVM really runs a VM, asked of this QEMU once (where /dev/kvm opens): it does not change while we run. */
  private kvmChecked: Promise<KvmCheck> | null = null;

  constructor(private readonly opts: QemuDriverOptions = {}) {}

  private async binary(): Promise<string> {
    if (this.binaryPath) return this.binaryPath;
    const found = this.opts.binary ?? (await which(QEMU_BINARY));
    if (!found) {
      throw new HangarError('VMM_NOT_AVAILABLE', `${QEMU_BINARY} is not on PATH (Debian: apt install qemu-system-x86)`, { binary: QEMU_BINARY });
    }
    this.binaryPath = found;
    return found;
  }

  /** Host facts (device, module, does KVM really work) gathered, then decided by the pure decideAccel. */
  private accel(): Promise<AccelChoice> {
    const env = this.opts.env ?? process.env;
    const kvmCheck = (): Promise<KvmCheck> => (this.kvmChecked ??= this.binary().then((b) => qemuKvmCheck(b, { env })));
    return chooseAccel({ env, kvmCheck, ...(this.opts.accel ? { override: this.opts.accel } : {}) });
  }

  async probe(): Promise<DriverProbe> {
    let binary: string;
    try {
      binary = await this.binary();
    } catch (e) {
      return { kind: 'qemu', available: false, reason: (e as Error).message };
    }
    const probe: DriverProbe = { kind: 'qemu', available: false, binary, reason: '' };
    const v = await run(binary, ['--version'], { allowFailure: true, timeoutMs: 10_000 }).catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
    const version = /version (\S+)/.exec(v.stdout)?.[1];
    if (v.code !== 0 || !version) {
      probe.reason = `${binary} --version failed: ${(v.stderr || v.stdout).trim().slice(0, 200)}`;
      return probe;
    }
    probe.version = version;
    const machines = await run(binary, ['-machine', 'help'], { allowFailure: true, timeoutMs: 10_000 });
    if (!/^microvm\s/m.test(machines.stdout)) {
      probe.reason = `QEMU ${version} at ${binary} has no microvm machine type`;
      return probe;
    }
    let accel: AccelChoice;
    try {
      accel = await this.accel();
    } catch (e) {
      probe.reason = (e as Error).message;
      return probe;
    }
    probe.accel = accel.accel;
    probe.available = true;
    probe.reason = `QEMU ${version} with microvm; ${accel.reason}`;
    return probe;
  }

  private sharedMemoryPath(spec: MachineSpec): string | null {
    return sharedMemoryPath(this.opts.memoryDir, spec.id);
  }

  private identity(spec: MachineSpec, binary: string): ProcessIdentity {
    return { binary, markers: [qmpSocketArg(qemuRunPaths(spec.runDir).qmpSocket), `hangar-${spec.id}`] };
  }

  async start(spec: MachineSpec, opts: QemuStartOptions = {}): Promise<QemuHandle> {
    const binary = await this.binary();
    const accel = await this.accel();
    const paths = qemuRunPaths(spec.runDir);
    // Pure and validating: nothing has been touched on the host if this throws.
    const agent = opts.guestAgent ?? this.opts.guestAgent ?? false;
    const confine = this.opts.confine;
    const user = confine?.user ?? null;
    // With a cgroup the CPUs start stopped, so no guest instruction runs before the process is inside it.
    const paused = !!confine?.cgroups && opts.incoming === undefined;
    const shared = opts.privateMemory === undefined ? this.sharedMemoryPath(spec) : null;
    const memory = opts.privateMemory !== undefined ? { path: opts.privateMemory, share: false } : shared ? { path: shared, share: true } : undefined;
    const argv = buildQemuArgv(spec, {
      ...(memory ? { memory } : {}),
      accel: accel.accel, qmpSocket: paths.qmpSocket, sandbox: this.opts.sandbox ?? true, paused,
      ...(agent ? { agentSocket: paths.agentSocket, guestSocket: paths.guestSocket, rng: true } : {}),
      ...(agent && this.opts.qemuGuestAgent ? { qgaSocket: join(spec.runDir, 'qga.sock') } : {}),
      ...(opts.incoming !== undefined ? { incoming: opts.incoming } : {}),
    });
    const setpriv = user ? (confine?.setpriv ?? (await findSetpriv())) : null;

    await mkdir(spec.runDir, { recursive: true, mode: 0o750 });
    const oldPid = await readPidFile(paths.pidFile);
    if (oldPid !== null && (await verifyProcess(oldPid, this.identity(spec, binary))).ok) {
      throw new HangarError('CONFLICT', `QEMU for ${spec.id} is already running (pid ${oldPid}): adopt it instead`, { pid: oldPid, id: spec.id });
    }
    await rm(paths.qmpSocket, { force: true });
    await rm(paths.agentSocket, { force: true });
    await rm(paths.guestSocket, { force: true });
    await rm(paths.pidFile, { force: true });
    if (shared) await makeSharedMemory(shared, spec.memMiB, user);
    if (user) {
      // QEMU creates its sockets in the run directory and opens the disk and console by path, as the VMM user.
      await prepareRunDir(spec.runDir, user);
      await handOver(user, { disk: spec.rootfsPath, console: spec.consoleLogPath });
      await ensureTraversable(dirname(spec.kernelPath)); // the kernel itself is world-readable in the image store
    }
    const cgroup = confine ? await vmCgroup(confine, spec) : null;
    const [command, args] = user && setpriv ? dropPrivileges(setpriv, user, accel.accel === 'kvm', binary, argv) : [binary, argv];

    const t0 = performance.now();
    let proc: SupervisedProcess;
    try {
      proc = await SupervisedProcess.spawn({
        command, args, logPath: paths.vmmLog, pidFile: paths.pidFile, ...(spec.netns ? { netns: spec.netns } : {}),
      });
    } catch (e) {
      await cgroup?.remove().catch(() => undefined);
      if (shared) await rm(shared, { force: true }).catch(() => undefined);
      throw e;
    }
    const gone = new AbortController();
    void proc.exited.then(() => gone.abort());
    let qmp: QmpClient;
    try {
      await cgroup?.join(proc.pid);
      qmp = await connectQmpWhenReady(paths.qmpSocket, {
        timeoutMs: this.opts.startTimeoutMs ?? 15_000, commandTimeoutMs: this.opts.qmpTimeoutMs ?? 10_000, signal: gone.signal,
      });
      if (paused) await qmp.cont();
    } catch (e) {
      let exit = proc.exit ?? (await proc.terminate({ graceMs: 1000 }));
      if (cgroup) exit = await closeCgroup(cgroup, exit);
      if (shared) await rm(shared, { force: true }).catch(() => undefined);
      const log = await tail(paths.vmmLog, 20);
      throw new HangarError('VMM_START_FAILED', `QEMU for ${spec.id} did not come up: ${log.trim().split('\n').at(-1) || (e as Error).message}`, {
        id: spec.id, exit, vmmLog: log, cause: isHangarError(e) ? e.toJSON() : String(e),
      }, { cause: e });
    }
    return new QemuHandle(spec, proc, qmp, paths, accel, Math.round(performance.now() - t0), agent, cgroup, user ? { uid: user.uid, gid: user.gid } : null, shared);
  }

  async adopt(spec: MachineSpec): Promise<VmmHandle | null> {
    const binary = await this.binary();
    const paths = qemuRunPaths(spec.runDir);
    const proc = await SupervisedProcess.adopt(paths.pidFile, this.identity(spec, binary));
    if (!proc) {
      // Its VMM died while no controller watched: the cgroup it left (empty) goes too.
      const left = this.opts.confine ? adoptedCgroup(this.opts.confine, spec) : null;
      if (left && (await left.pids()).length === 0) await left.remove().catch(() => undefined);
      return null;
    }
    try {
      const qmp = await QmpClient.connect(paths.qmpSocket, { timeoutMs: 5000, commandTimeoutMs: this.opts.qmpTimeoutMs ?? 10_000 });
      // QEMU created the agent socket if it was started with the channel.
      const confine = this.opts.confine;
      const user = confine?.user ?? null;
      const shared = this.sharedMemoryPath(spec);
      return new QemuHandle(spec, proc, qmp, paths, null, 0, existsSync(paths.agentSocket), confine ? adoptedCgroup(confine, spec) : null, user ? { uid: user.uid, gid: user.gid } : null,
        shared && existsSync(shared) ? shared : null);
    } catch (e) {
      proc.release();
      // Ours and alive but deaf: not "gone". The caller decides (usually: stop it by signal and start afresh).
      throw new HangarError('QMP_ERROR', `QEMU ${proc.pid} for ${spec.id} runs but its QMP socket does not answer`, { pid: proc.pid, id: spec.id }, { cause: e });
    }
  }

  /** A QEMU state restores into any run directory: nothing to refuse up front. */
  restoreRefusal(): Promise<null> {
    return Promise.resolve(null);
  }

  /**
   * QEMU waits for the migration stream (-incoming) with the device set the state was saved with, then loads it.
   * A state with its RAM beside it (QEMU_MEMORY_FILE in opts.files: a golden snapshot's) maps that file privately
   * and loads the device state only.
   */
  async restore(spec: MachineSpec, dir: string, opts: RestoreOptions = {}): Promise<QemuHandle> {
    if (opts.files) await checkFiles(dir, opts.files);
    const sha256 = opts.files?.[QEMU_STATE_FILE]?.sha256;
    const mapped = opts.files?.[QEMU_MEMORY_FILE] ? join(dir, QEMU_MEMORY_FILE) : undefined;
    const r = await restoreQemuState((incoming) => this.start(spec, {
      incoming, ...(opts.guestAgent !== undefined ? { guestAgent: opts.guestAgent } : {}), ...(mapped ? { privateMemory: mapped } : {}),
    }), spec, join(dir, QEMU_STATE_FILE), { ...(sha256 ? { sha256 } : {}), ...(mapped ? { ignoreShared: true } : {}) });
    return r.handle;
  }
}
