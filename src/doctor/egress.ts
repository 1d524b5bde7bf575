// The doctor's egress judge: why a VM cannot get out, from evidence — no uplink (or it is down, or has no route),
// no NAT rule, netd not running or its resolvers not answering, the VM's upstream proxy refusing, names its policy
// refused, destinations its policy blocked. Pure: the facts come from the egress layer (nft counters and ruleset,
// netd's stats) and the VM's record; the most fundamental cause is named first (causality in model.ts).
import type { Severity } from '../findings.js';
import type { VmEgressFacts } from '../net/egress/egress.js';
import type { DoctorCode, DoctorFinding, Verdict } from './model.js';

/** What the judge reads: the VM's policy and the egress layer's evidence (nft, netd, the uplink). */
export type EgressFacts = VmEgressFacts;

type F = Omit<DoctorFinding, 'check'>;
const f = (code: DoctorCode, severity: Severity, message: string, fix: string, evidence: string[]): F =>
  ({ code, severity, option: null, message, fix, evidence: evidence.map((text) => ({ text })) });

export function judgeEgress(x: EgressFacts): Verdict {
  const p = x.vm.policy.egress;
  const saw = `egress ${p.mode}${p.proxy ? ' via proxy' : ''}; uplink ${x.uplink.name ?? 'none'}${x.uplink.name ? (x.uplink.up ? ' up' : ' down') : ''}; NAT ${x.nat ? 'on' : 'off'}; netd ${x.netd ? 'running' : 'not running'}; ${x.refusedNames.length} refused name(s), ${x.deniedPackets} blocked packet(s)`;
  if (p.mode === 'none') return { saw, findings: [] };
  const out: F[] = [];
  if (!x.uplink.name) {
    out.push(f('DOC_EGRESS_NO_UPLINK', 'error', `VM ${x.vm.id} may reach the internet (${p.mode}) but no uplink is configured: nothing leaves the VM namespace.`, 'Set net.egress.uplink to an interface in the VM namespace that leads out (and restart the controller).', ['net.egress.uplink: null']));
  } else if (!x.uplink.exists || !x.uplink.up || !x.uplink.defaultRoute) {
    const what = !x.uplink.exists ? 'does not exist' : !x.uplink.up ? 'is down' : 'has no default route through it';
    out.push(f('DOC_EGRESS_NO_UPLINK', 'error', `The uplink ${x.uplink.name} ${what} in the VM namespace: guests cannot get out.`, `Create or bring up ${x.uplink.name} in the VM namespace with a default route through it.`, [`${x.uplink.name}: exists=${x.uplink.exists} up=${x.uplink.up} default route=${x.uplink.defaultRoute}`]));
  } else if (x.notForwarding?.length) {
    const keys = x.notForwarding.map((k) => k.replace(/\//g, '.'));
    out.push(f('DOC_EGRESS_NO_UPLINK', 'error', `IPv4 forwarding is off where the bridge lives (${keys.join(', ')} = 0): guests' packets are not routed out of ${x.uplink.name}.`, 'Restart the controller (it turns forwarding on for the bridge and the uplink), or set it with sysctl.', keys.map((k) => `${k} = 0`)));
  }
  if (x.uplink.name && !x.nat) out.push(f('DOC_EGRESS_NO_NAT', 'error', `No masquerade rule out of ${x.uplink.name} in table inet hangar: guests' packets leave with private source addresses and no answer comes back.`, 'Restart the controller (it rebuilds its nft table), or check `nft list table inet hangar` in the VM namespace.', ['postrouting: no masquerade']));
  if (!x.netd) out.push(f('DOC_EGRESS_NETD_DOWN', 'error', 'netd (guest DNS and proxy relay) is not running: guests cannot resolve names and proxied connections fail.', 'Check netd.log in the state directory; the controller restarts netd on its own.', ['netd: no answer on its control socket']));
  else if (x.netd.upstreamFailures > 0 && x.netd.forwarded === 0) out.push(f('DOC_EGRESS_DNS_UPSTREAM', 'error', `The upstream resolvers (${x.netd.resolvers.join(', ') || 'none'}) did not answer: every lookup fails (SERVFAIL).`, 'Set net.egress.resolvers to resolvers reachable from the VM namespace.', [`${x.netd.upstreamFailures} upstream failure(s), 0 answered`]));
  if (p.proxy && x.proxyFailure) out.push(f('DOC_EGRESS_PROXY_REFUSED', 'error', `The VM's upstream proxy ${x.proxyFailure.proxy} refused or failed: ${x.proxyFailure.error}.`, 'Check the proxy\'s address and credentials in egress.proxy (PATCH /v1/vms/:id/network).', [`${x.proxyFailure.at} ${x.proxyFailure.error}`]));
  if (x.refusedNames.length) {
    const names = [...new Set(x.refusedNames.map((r) => r.name))];
    out.push(f('DOC_EGRESS_DNS_REFUSED', 'warning', `The VM's policy refused ${names.length} name(s) (${names.slice(0, 5).join(', ')}): the guest sees REFUSED and cannot connect to them.`, `Add them to egress.allow (PATCH /v1/vms/${x.vm.id}/network) if the VM needs them.`, x.refusedNames.slice(-5).map((r) => `${r.at} ${r.name}: ${r.reason}`)));
  }
  if (x.deniedPackets > 0) out.push(f('DOC_EGRESS_BLOCKED', 'info', `The VM's policy dropped ${x.deniedPackets} packet(s) to destinations it does not allow (literal addresses not resolved through an allowed name, private or link-local ranges, deny entries, or its connection limit).`, 'Allow the destination (a name, or a CIDR) in egress.allow if the VM needs it.', [`denied_${x.vm.ip.replace(/\./g, '_')}: ${x.deniedPackets} packets`]));
  return { saw, findings: out };
}
