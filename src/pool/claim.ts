// A claim, as a named step list (like src/vm/boot.ts: steps with undos, run by runSteps): take a ready member out of
// its pool for the claimer (tenant, name, quotas — one store transaction), resume it, resync its clock and entropy
// and give it its hostname (the agent channel), give it its own machine-id over a fresh hangar-agent session, and
// its TTL. Pure: the steps only arrange calls on ClaimPorts, so tests run them with fakes. A step the lead adds
// later ("attach volumes") goes between resume and identity.
import { HangarError } from '../errors.js';
import type { Step, Undo } from '../util/steps.js';
import { machineIdFrom } from './plan.js';

/** What a claim does to the world, one call per effect. */
export interface ClaimPorts {
  /** Moves the member to the claimer's tenant under its name (quotas checked); POOL_EMPTY if it is gone. */
  take(vmId: string, tenant: string, name: string): void;
  resume(vmId: string): Promise<void>;
  /** Clock, entropy and hostname through the agent channel; false when no agent answered. */
  resync(vmId: string, hostname: string): Promise<boolean>;
  /** A fresh hangar-agent session (the pool's one, if any, is dropped), and /etc/machine-id written through it. */
  writeMachineId(vmId: string, machineId: string): Promise<void>;
  setExpiry(vmId: string, expiresAt: string | null): void;
  /** A claim that failed after the take: the VM is destroyed (it is the claimer's now, half-made). */
  discard(vmId: string): Promise<void>;
  random(n: number): Uint8Array;
  now(): number;
}

export interface ClaimRequest {
  vmId: string;
  tenant: string;
  name: string;
  ttlSeconds?: number;
}

export interface ClaimCtx {
  machineId?: string;
  synced?: boolean;
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
  return [
    { name: `${id}: take for ${req.tenant}`, run: () => { p.take(id, req.tenant, req.name); return discard; }, rollbackOnly: true },
    { name: `${id}: resume`, run: () => p.resume(id) },
    { name: `${id}: resync clock, entropy, hostname`, run: async (c) => { c.synced = await p.resync(id, hostnameOf(req.name)); } },
    {
      name: `${id}: machine-id`,
      run: async (c) => {
        c.machineId = machineIdFrom(p.random(16));
        await p.writeMachineId(id, c.machineId);
      },
    },
    { name: `${id}: expiry`, run: () => { p.setExpiry(id, req.ttlSeconds ? new Date(p.now() + req.ttlSeconds * 1000).toISOString() : null); } },
  ];
}
