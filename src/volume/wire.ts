// The sessions parts the composition root wires (api/controller.ts): the volume service over the manager, the store
// and the agents; the VM service that handles create's volumes and idle settings; the routes; and the listener that
// mounts a VM's volumes each time it becomes ready (first boot, restart, restore).
import type { AgentPort } from '../agent/port.js';
import type { VmRecord } from '../domain/vm.js';
import type { ApiRoute } from '../api/routes.js';
import type { EventRecord } from '../store/store.js';
import type { VolumeStore } from '../store/volumes.js';
import type { Quotas } from '../tenancy/keys.js';
import { run } from '../util/exec.js';
import { idleRoutes } from '../vm/idle-routes.js';
import type { VmService } from '../vm/service.js';
import type { MachineSpec } from '../vmm/types.js';
import { volumeRoutes } from './routes.js';
import { VolumeService, type Monitor } from './service.js';
import { SessionVms } from './vms.js';

export interface SessionWiring {
  vms: VmService & { find(idOrName: string): VmRecord | null; updateSpec(id: string, spec: MachineSpec): void; monitor(id: string): Monitor | null; touch(id: string): void };
  volumes: VolumeStore;
  agents: AgentPort;
  quotas(tenant: string): { quotas: Quotas | null; vmDiskMiB: number };
  dir: string;
  handOver?(file: string): Promise<void>;
  idleDefaults: { timeoutS: number; action: 'hibernate' | 'pause' };
  onEvent(listener: (e: EventRecord) => void): () => void;
  log(msg: string, data?: Record<string, unknown>): void;
}

export interface SessionParts {
  service: VolumeService;
  vms: SessionVms;
  routes: ApiRoute[];
  /** Stops the ready listener. */
  close(): void;
}

export function sessionParts(w: SessionWiring): SessionParts {
  const service = new VolumeService({
    volumes: w.volumes, vm: (id) => w.vms.find(id), setSpec: (id, spec) => w.vms.updateSpec(id, spec), monitor: (id) => w.vms.monitor(id),
    agents: w.agents, quotas: w.quotas, dir: w.dir, run: async (s) => { await run(s.cmd, s.args, { timeoutMs: 300_000 }); },
    ...(w.handOver ? { handOver: w.handOver } : {}), log: w.log, touch: (id) => w.vms.touch(id),
  });
  const vms = new SessionVms({ inner: w.vms, volumes: service, setIdle: (id, idle) => { w.volumes.setIdle(id, idle); }, log: w.log });
  const off = w.onEvent((e) => {
    const to = (e.data as { to?: string }).to;
    if (!e.vmId || e.type !== 'vm.state' || to !== 'ready' || !w.volumes.attachmentsOfVm(e.vmId).length) return;
    const id = e.vmId;
    // After the event's own transaction: the ready VM's agent connects in the meantime.
    setImmediate(() => {
      vms.ensure(id).catch((err: unknown) => w.log('volumes not mounted', { vm: id, err: (err as Error).message }));
    });
  });
  const routes = [
    ...volumeRoutes(service),
    ...idleRoutes({
      vmId: (ref) => w.vms.get(ref).id,
      get: (id) => w.volumes.idle(id),
      set: (id, patch) => w.volumes.setIdle(id, patch),
      defaults: w.idleDefaults,
    }),
  ];
  return { service, vms, routes, close: off };
}
