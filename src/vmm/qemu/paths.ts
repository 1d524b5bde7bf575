// Where a QEMU VM's sockets and files live inside its run directory. One place, so the driver, the state
// transport and adoption agree.
import { join } from 'node:path';

export interface QemuRunPaths {
  qmpSocket: string;
  pidFile: string;
  /** QEMU's own stdout/stderr (the guest console is spec.consoleLogPath). */
  vmmLog: string;
  /** The resume-sync channel (virtio-serial org.hangar.agent) QEMU listens on. */
  agentSocket: string;
  /** hangar-agent's channel (virtio-serial org.hangar.guest, src/agent/PROTOCOL.md) QEMU listens on. */
  guestSocket: string;
  /** Where QEMU sends (migrate) or receives (-incoming) a migration stream. */
  migrateOutSocket: string;
  migrateInSocket: string;
}

export function qemuRunPaths(runDir: string): QemuRunPaths {
  return {
    qmpSocket: join(runDir, 'qmp.sock'), pidFile: join(runDir, 'qemu.pid'), vmmLog: join(runDir, 'vmm.log'),
    agentSocket: join(runDir, 'agent.sock'), guestSocket: join(runDir, 'guest.sock'), migrateOutSocket: join(runDir, 'migrate-out.sock'), migrateInSocket: join(runDir, 'migrate-in.sock'),
  };
}
