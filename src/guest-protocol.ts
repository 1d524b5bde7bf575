// What the host and the guest agree on. The guest init (src/image/guest/) prints these on the serial console.

/** Printed once on the console, only after the VNC server accepts TCP connections. */
export const READY_MARKER = 'HANGAR-READY';
/** Printed when the init starts, so boot phases can be timed from the console. */
export const INIT_MARKER = 'HANGAR-INIT';
/** The guest's VNC (RFB) port. */
export const VNC_PORT = 5900;
/** Path of the init inside the rootfs, passed as init= on the kernel command line. */
export const GUEST_INIT_PATH = '/sbin/hangar-init';
/**
 * Written by the host into a VM's console log before a VMM restores saved state (hibernation, clone): the log is
 * appended to, never rewritten, so the boot's history stays and what follows the last marker is the restored run.
 * Line shape: `HANGAR-CONSOLE-RESTORED <what> <ISO time>`.
 */
export const CONSOLE_RESTORED_MARKER = 'HANGAR-CONSOLE-RESTORED';
/** The virtio-serial port name hangar-agent looks for (/sys/class/virtio-ports/*\/name); PROTOCOL.md in src/agent/. */
export const GUEST_PORT_NAME = 'org.hangar.guest';
/** The vsock port hangar-agent listens on (Firecracker). */
export const AGENT_VSOCK_PORT = 1024;
/** Where the agent is installed in the rootfs. */
export const AGENT_PATH = '/usr/local/sbin/hangar-agent';

/** How the host reaches a VM's hangar-agent; its VMM driver says which (VmmHandle.guestChannel). */
export type GuestChannel =
  | { kind: 'unix'; path: string }
  | { kind: 'vsock'; path: string; port: number };

/** Printed by the guest's resume agent on the console once it has resynchronised: `HANGAR-RESUMED <guest epoch seconds>`. */
export const RESUMED_MARKER = 'HANGAR-RESUMED';
