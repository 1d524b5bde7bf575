// The QEMU command line for a MachineSpec: pure, no host access. The binary is not part of the result.
//
// Escaping, verified against QEMU 7.2: values inside an option string (-drive file=, -chardev path=) are split at
// commas, so a comma in a path is doubled (",,"); '=' is harmless after an explicit key. -kernel, -append and
// -pidfile take their argument literally and must NOT be escaped. That is why the serial console and the QMP
// socket are given as explicit `-chardev ...,path=` options rather than `-serial file:P` / `-qmp unix:P`: the
// short forms parse differently (unix:P treats a '=' in P as a key) and would need their own rules.
import { Buffer } from 'node:buffer';
import { HangarError } from '../../errors.js';
import { cleanAbsPath, hasControl, invalidArgument, validInt, validInterfaceName, validMac, validName } from '../../util/validate.js';
import type { MachineSpec } from '../types.js';
import type { Accel } from '../accel.js';
import { GUEST_PORT_NAME } from '../../guest-protocol.js';

export interface QemuArgvOptions {
  accel: Accel;
  qmpSocket: string;
  pidFile?: string;
  /** Migration source to wait for (e.g. "defer", "unix:SOCKET"); the VM starts paused. */
  incoming?: string;
  /**
   * The host→guest agent channel: a virtio-serial port named AGENT_PORT_NAME backed by a Unix socket QEMU
   * listens on. After a snapshot restore Hangar writes the current time and a fresh seed into it (see
   * src/snapshot/agent.ts). Part of the device set: a snapshot only restores into the same devices.
   */
  agentSocket?: string;
  /**
   * hangar-agent's channel (src/agent/PROTOCOL.md): a second port, named GUEST_PORT_NAME, on the same virtio-serial
   * device, backed by a Unix socket QEMU listens on. Given together with agentSocket (one device set).
   */
  guestSocket?: string;
  /** A virtio-rng device fed from the host's entropy (each process, so each clone, draws its own). */
  rng?: boolean;
  /** QEMU's seccomp filter (QEMU_SANDBOX): no obsolete syscalls, no setuid, no fork/exec, no affinity changes. */
  sandbox?: boolean;
  /** Start with the CPUs stopped (-S): the caller moves the process into its cgroup, then `cont`s it. */
  paused?: boolean;
  /**
   * Bench/debug only: qemu-guest-agent's port (org.qemu.guest_agent.0) on the same virtio-serial device, backed by
   * this Unix socket (bench/agent compares hangar-agent with it over the same kind of channel). Never set by the
   * controller: it changes the device set.
   */
  qgaSocket?: string;
}

/** The -sandbox argument: everything QEMU 7.2 can deny (measured: a VM boots, saves and restores under it). */
export const QEMU_SANDBOX = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

/** The virtio-serial port name the guest agent looks for (/sys/class/virtio-ports/*\/name). */
export const AGENT_PORT_NAME = 'org.hangar.agent';

/** What `-smp` and `-m` accept here (the controller's configured limits must stay inside these). */
export const QEMU_LIMITS = { vcpus: { min: 1, max: 64 }, memMiB: { min: 64, max: 1024 * 1024 } } as const;

/** The machine type: microvm without ACPI or option ROMs (same virtio-mmio device model as Firecracker). */
export const MICROVM_MACHINE = 'microvm,acpi=off,x-option-roms=off,rtc=on';
/** x86 COMMAND_LINE_SIZE. QEMU appends one virtio_mmio.device=... (~35 bytes) per device to the command line. */
const CMDLINE_MAX = 2048;
const CMDLINE_RESERVE_PER_DEVICE = 64;
/** sun_path is 108 bytes including the terminating NUL. */
const UNIX_PATH_MAX = 107;
const INCOMING_RE = /^(defer|(exec|unix|tcp|fd):.+)$/s;

function invalid(field: string, message: string): HangarError {
  return invalidArgument({ field, reason: 'format' }, message);
}

/** Absolute, no control characters, as given (qmpSocketArg must match what /proc/PID/cmdline shows). */
const cleanPath = cleanAbsPath;

/** QEMU's option-string rule: a literal comma inside a value is written as two commas. */
export function escapeOptionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** A path that goes inside an option string (key=PATH,...). */
function optPath(value: unknown, field: string): string {
  return escapeOptionValue(cleanPath(value, field));
}

function socketPath(value: unknown, field: string): string {
  const p = cleanPath(value, field);
  if (Buffer.byteLength(p) > UNIX_PATH_MAX) {
    throw invalid(field, `a Unix socket path must be at most ${UNIX_PATH_MAX} bytes (got ${Buffer.byteLength(p)}): use a shorter run directory`);
  }
  return escapeOptionValue(p);
}

function validBootArgs(value: unknown, devices: number): string {
  const max = CMDLINE_MAX - CMDLINE_RESERVE_PER_DEVICE * devices;
  if (typeof value !== 'string' || hasControl(value)) {
    throw new HangarError('BOOT_ARGS_INVALID', 'the kernel command line must be a string without control characters', { field: 'bootArgs' });
  }
  if (Buffer.byteLength(value) > max) {
    throw new HangarError('BOOT_ARGS_INVALID', `the kernel command line is ${Buffer.byteLength(value)} bytes; at most ${max} leave room for the virtio_mmio.device= entries QEMU appends`, { field: 'bootArgs', max });
  }
  return value;
}

/** TCG's translation-block cache in MiB (QEMU's default, 1 GiB, exceeds the VMM cgroup's overhead). */
export const TCG_TB_SIZE_MIB = 128;

export function buildQemuArgv(spec: MachineSpec, opts: QemuArgvOptions): string[] {
  // Validate everything first: nothing is emitted from an unchecked value.
  const id = validName(spec.id, 'id');
  const kernel = cleanPath(spec.kernelPath, 'kernelPath');
  const rootfs = optPath(spec.rootfsPath, 'rootfsPath');
  const consoleLog = optPath(spec.consoleLogPath, 'consoleLogPath');
  const vcpus = validInt(spec.vcpus, 'vcpus', QEMU_LIMITS.vcpus.min, QEMU_LIMITS.vcpus.max);
  const memMiB = validInt(spec.memMiB, 'memMiB', QEMU_LIMITS.memMiB.min, QEMU_LIMITS.memMiB.max);
  const qmp = socketPath(opts.qmpSocket, 'qmpSocket');
  const pidFile = opts.pidFile === undefined ? undefined : cleanPath(opts.pidFile, 'pidFile');
  if (opts.accel !== 'kvm' && opts.accel !== 'tcg') throw invalid('accel', `must be kvm or tcg (got ${JSON.stringify(opts.accel)})`);
  const net = spec.net ? { tap: validInterfaceName(spec.net.tap, 'net.tap'), mac: validMac(spec.net.mac, 'net.mac') } : undefined;
  const agent = opts.agentSocket === undefined ? undefined : socketPath(opts.agentSocket, 'agentSocket');
  const guest = opts.guestSocket === undefined ? undefined : socketPath(opts.guestSocket, 'guestSocket');
  if (guest && !agent) throw invalid('guestSocket', 'the guest agent port needs the agent channel (agentSocket) too');
  const bootArgs = validBootArgs(spec.bootArgs, 1 + (net ? 1 : 0) + (agent ? 1 : 0) + (opts.rng ? 1 : 0));
  if (opts.incoming !== undefined && (typeof opts.incoming !== 'string' || !INCOMING_RE.test(opts.incoming) || hasControl(opts.incoming))) {
    throw invalid('incoming', `must be "defer" or exec:/unix:/tcp:/fd: without control characters (got ${JSON.stringify(opts.incoming)})`);
  }

  const argv = [
    '-name', `hangar-${id}`,
    '-M', MICROVM_MACHINE,
    // TCG's translated-code cache defaults to 1 GiB: a guest running much code (Chromium) grows QEMU's RSS past the
    // VMM cgroup's guest memory + overhead, and the cgroup OOM-kills the VMM. 128 MiB keeps it inside the overhead.
    ...(opts.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', `tcg,tb-size=${TCG_TB_SIZE_MIB}`]),
    '-m', `${memMiB}M`,
    '-smp', String(vcpus),
    '-nodefaults', '-no-user-config', '-display', 'none',
    // A guest reboot (reboot=k, panic=1) ends the process, as with Firecracker: Hangar sees it and decides.
    '-no-reboot',
    '-chardev', `file,id=con0,path=${consoleLog},append=on`,
    '-serial', 'chardev:con0',
    // The PS/2 controller Firecracker also has: QMP send-key ctrl-alt-delete reaches the guest through it, a
    // graceful stop that works with acpi=off (system_powerdown needs ACPI).
    '-device', 'i8042',
    '-kernel', kernel,
    '-append', bootArgs,
    '-drive', `id=root,file=${rootfs},format=raw,if=none`,
    '-device', 'virtio-blk-device,drive=root',
  ];
  if (net) {
    argv.push(
      '-netdev', `tap,id=n0,ifname=${net.tap},script=no,downscript=no`,
      '-device', `virtio-net-device,netdev=n0,mac=${net.mac}`,
    );
  }
  if (agent) {
    argv.push(
      '-chardev', `socket,id=agent,path=${agent},server=on,wait=off`,
      '-device', 'virtio-serial-device,id=vser0',
      '-device', `virtserialport,bus=vser0.0,chardev=agent,name=${AGENT_PORT_NAME}`,
    );
    if (guest) {
      argv.push(
        '-chardev', `socket,id=guest,path=${guest},server=on,wait=off`,
        '-device', `virtserialport,bus=vser0.0,chardev=guest,name=${GUEST_PORT_NAME}`,
      );
    }
    if (opts.qgaSocket) argv.push('-chardev', `socket,id=qga,path=${opts.qgaSocket},server=on,wait=off`, '-device', 'virtserialport,bus=vser0.0,chardev=qga,name=org.qemu.guest_agent.0');
  }
  if (opts.rng) argv.push('-device', 'virtio-rng-device');
  argv.push(
    '-chardev', `socket,id=qmp,path=${qmp},server=on,wait=off`,
    '-mon', 'chardev=qmp,mode=control',
  );
  if (opts.sandbox) argv.push('-sandbox', QEMU_SANDBOX);
  if (opts.paused) argv.push('-S');
  if (pidFile !== undefined) argv.push('-pidfile', pidFile);
  if (opts.incoming !== undefined) argv.push('-incoming', opts.incoming);
  return argv;
}

/** The QMP socket's argv element, as it appears in /proc/PID/cmdline (used to recognise our process on adopt). */
export function qmpSocketArg(qmpSocket: string): string {
  return `path=${escapeOptionValue(qmpSocket)},`;
}
