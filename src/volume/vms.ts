// The VM service with sessions' extras: a create's `volumes` (checked before the VM exists, recorded right after
// it, swapped in and mounted once it is ready) and its own idle settings. Wraps the manager's VmService; the
// composition root hands this to the API instead of the bare manager.
import type { VmRecord } from '../domain/vm.js';
import type { IdleSettings } from '../store/volumes.js';
import type { CreateVmRequest } from '../vm/input.js';
import type { LifecycleAction, VmOwner, VmService } from '../vm/service.js';
import type { VolumeService } from './service.js';

export interface SessionDeps {
  inner: VmService;
  volumes: Pick<VolumeService, 'precheck' | 'reserve' | 'ensure' | 'release'>;
  setIdle(vmId: string, idle: Partial<IdleSettings>): void;
  log?(msg: string, data?: Record<string, unknown>): void;
}

export class SessionVms implements VmService {
  /** One ensure at a time per VM (the create's own and the controller's on `ready` may meet). */
  private readonly ensuring = new Map<string, Promise<void>>();

  constructor(private readonly d: SessionDeps) {}

  /** Mounts the VM's recorded volumes (idempotent), after any ensure already running for it. */
  ensure(vmId: string): Promise<void> {
    const prev = this.ensuring.get(vmId) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.d.volumes.ensure(vmId));
    this.ensuring.set(vmId, next);
    void next.finally(() => { if (this.ensuring.get(vmId) === next) this.ensuring.delete(vmId); }).catch(() => undefined);
    return next;
  }

  async create(req: CreateVmRequest, owner?: VmOwner): Promise<{ vm: VmRecord; ready: Promise<VmRecord> }> {
    const tenant = owner?.tenant ?? 'default';
    const mounts = req.volumes ?? [];
    this.d.volumes.precheck(tenant, mounts); // before the VM exists: a refused volume leaves nothing
    const made = await this.d.inner.create(req, owner);
    try {
      if (mounts.length) this.d.volumes.reserve(made.vm.id, tenant, mounts);
      if (req.idle && (req.idle.timeoutS !== null || req.idle.action !== null)) this.d.setIdle(made.vm.id, req.idle);
    } catch (e) {
      // A writer that won the volume between the check and here: this VM goes (its attachments with its row).
      await this.d.inner.destroy(made.vm.id).catch(() => undefined);
      throw e;
    }
    const ready = mounts.length ? made.ready.then(async (vm) => { await this.ensure(vm.id); return vm; }) : made.ready;
    ready.catch(() => undefined);
    return { vm: made.vm, ready };
  }

  list(): VmRecord[] { return this.d.inner.list(); }
  get(idOrName: string): VmRecord { return this.d.inner.get(idOrName); }
  action(idOrName: string, action: LifecycleAction): Promise<VmRecord> { return this.d.inner.action(idOrName, action); }
  act(idOrName: string, action: LifecycleAction): Promise<{ vm: VmRecord; ready: Promise<VmRecord> }> { return this.d.inner.act(idOrName, action); }
  hibernate(idOrName: string): Promise<VmRecord> { return this.d.inner.hibernate(idOrName); }
  /** Unmounts the VM's volumes in the guest first (best effort: see VolumeService.release), then destroys it. */
  async destroy(idOrName: string): Promise<void> {
    await this.d.volumes.release(idOrName);
    return this.d.inner.destroy(idOrName);
  }
  consolePath(idOrName: string): string { return this.d.inner.consolePath(idOrName); }
  host(): ReturnType<VmService['host']> { return this.d.inner.host(); }
  images(): ReturnType<VmService['images']> { return this.d.inner.images(); }
}
