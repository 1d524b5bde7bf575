// A claim, as a named step list (like src/vm/boot.ts: steps with undos, run by runSteps): take a ready member out of
// its pool for the claimer (tenant, name, quotas — one store transaction), resume it, and send it its identity
// over the agent channel: its hostname, the clock and a fresh entropy seed (the guest's resume agent applies them
// and acknowledges; under TCG that takes the guest ~1.5 s of perl and date forks, so the claim does not wait for
// the acknowledgement: `identity` settles with it). Its machine-id was given when it was made (unique per member,
// so per claimed VM), and its hangar-agent session is dropped: the claimer's first use opens a fresh one. Pure:
// the steps only arrange calls on ClaimPorts. Volumes asked for at claim are attached after resume (swapped into the
// running VM's empty slots and mounted: src/volume/); a failure there discards the claimed VM, releasing them.
import { HangarError } from '../errors.js';
import type { Step, Undo } from '../util/steps.js';

/** What a claim does to the world, one call per effect. */
export interface ClaimPorts {
  /** Moves the member to the claimer's tenant under its name (quotas checked); POOL_EMPTY if it is gone. */
  take(vmId: string, tenant: string, name: string): void;
  resume(vmId: string): Promise<void>;
  /** Sends hostname, clock and entropy through the agent channel; settles with the guest's answer (false: none). */
  resync(vmId: string, hostname: string): Promise<boolean>;
  /** Drops the pool's hangar-agent session, if any: the claimer's first use opens a fresh one. */
  freshSession(vmId: string): void;
  setExpiry(vmId: string, expiresAt: string | null): void;
  /** Attaches a volume to the running VM and mounts it in the guest (src/volume/service.ts attach). */
  attachVolume(vmId: string, mount: ClaimVolume, tenant: string): Promise<void>;
  /** A claim that failed after the take: the VM is destroyed (it is the claimer's now, half-made). */
  discard(vmId: string): Promise<void>;
  now(): number;
}

/** A volume to mount at claim (the create input's `volumes` item). */
export interface ClaimVolume {
  name: string;
  path: string;
  readOnly?: boolean;
}

export interface ClaimRequest {
  vmId: string;
  tenant: string;
  name: string;
  ttlSeconds?: number;
  volumes?: readonly ClaimVolume[];
}

export interface ClaimCtx {
  /** Settles when the guest has applied its identity (true) or did not answer (false); never rejects. */
  identity?: Promise<{ synced: boolean; ms: number }>;
}

/** A VM name as a hostname (resume-agent's `host NAME`: [a-z0-9-], at most 63). Pure. */
export function hostnameOf(name: string): string {
  const h = name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+/, '').slice(0, 63).replace(/-+$/, '');
  if (!h) throw new HangarError('INVALID_ARGUMENT', `${JSON.stringify(name)} gives no hostname`, { field: 'name' });
  return h;
}

export function claimSteps(req: ClaimRequest, p: ClaimPorts): Step<ClaimCtx>[] {
  const id = req.vmId;
  const discard: Undo = () => p.discard(id);
  const hostname = hostnameOf(req.name);
  const steps: Step<ClaimCtx>[] = [
    { name: `${id}: take for ${req.tenant}`, run: () => { p.take(id, req.tenant, req.name); return discard; }, rollbackOnly: true },
    { name: `${id}: resume`, run: () => p.resume(id) },
    {
      name: `${id}: identity (hostname, clock, entropy; fresh agent session)`,
      run: (c) => {
        p.freshSession(id);
        const t0 = p.now();
        c.identity = p.resync(id, hostname).then((synced) => ({ synced, ms: p.now() - t0 }), () => ({ synced: false, ms: p.now() - t0 }));
      },
    },
  ];
  for (const v of req.volumes ?? []) {
    steps.push({ name: `${id}: volume ${v.name} at ${v.path}`, run: () => p.attachVolume(id, v, req.tenant) });
  }
  if (req.ttlSeconds) {
    const ttl = req.ttlSeconds;
    steps.push({ name: `${id}: expiry`, run: () => { p.setExpiry(id, new Date(p.now() + ttl * 1000).toISOString()); } });
  }
  return steps;
}
