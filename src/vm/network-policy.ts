// A VM's network policy at runtime (PATCH /v1/vms/:id/network): the new policy over its current one, applied to its
// live network first (one nft transaction, then netd and tc: ~10-40 ms) and then recorded, so the record never
// claims a policy the host does not enforce. A VM without a live network only has its record changed; its next
// boot applies it.
import type { VmRecord } from '../domain/vm.js';
import type { NetworkPolicyBody } from '../net/egress/schema.js';
import { normalisePolicy, type NetworkPolicy } from '../net/egress/policy.js';
import type { StateStore } from '../store/store.js';
import type { VmNetwork } from './network.js';

/** States in which the VM's network (TAP or clone namespace, and its rules) exists or is being made. */
const LIVE = new Set(['booting', 'ready', 'paused', 'stopping']);

export function currentPolicy(vm: VmRecord, network: VmNetwork): NetworkPolicy {
  return vm.netPolicy ?? network.config.egress.default;
}

export async function changeNetworkPolicy(d: { store: StateStore; network: VmNetwork }, vm: VmRecord, body: NetworkPolicyBody): Promise<VmRecord> {
  const from = currentPolicy(vm, d.network);
  const to = normalisePolicy(body, from); // INVALID_ARGUMENT before anything changes
  if (vm.net && LIVE.has(vm.state)) await d.network.setPolicy(vm.net, from, to);
  d.store.patchVm(vm.id, { netPolicy: to });
  d.store.appendEvent(vm.id, 'vm.network', { mode: to.egress.mode, group: to.group, proxy: to.egress.proxy !== null });
  return d.store.getVm(vm.id)!;
}
