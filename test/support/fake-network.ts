// A FAKE VmNetwork (src/vm/network.ts) that records what the VM layer asks of the host network, for unit tests of
// the boot plans and the reconciler. Planning is the real, pure planner.
import type { VmNet } from '../../src/domain/vm.js';
import { normaliseNetConfig } from '../../src/net/config.js';
import { hostVmNetwork, type VmNetwork } from '../../src/vm/network.js';

export interface FakeNetwork extends VmNetwork {
  log: string[];
  /** What the host has, as orphans() reports it. */
  host: { taps: string[]; netns: string[] };
  failAttach?: boolean;
}

export function fakeNetwork(log: string[] = []): FakeNetwork {
  const cfg = normaliseNetConfig({ mode: 'netns', netns: 'hgt-fake', bridge: 'hgbr9', cidr: '10.219.0.0/28', hostNetns: 'hgt-fake-host' });
  const planner = hostVmNetwork(cfg);
  const name = (n: VmNet): string => (n.clone ? `clone network ${n.clone.netns}` : `tap ${n.tap}`);
  const f: FakeNetwork = {
    log,
    host: { taps: [], netns: [] },
    config: cfg,
    poolPlan: planner.poolPlan,
    clonePlan: planner.clonePlan,
    attach: async () => {
      log.push('net attach');
      if (f.failAttach) throw new Error('net attach failed');
      return () => { log.push('net detach'); };
    },
    detach: async (n) => { if (n) log.push(`detach ${name(n)}`); },
    setPolicy: async (n, _from, to) => { log.push(`policy ${name(n)} ${to.egress.mode}`); },
    gatewayMac: async () => '02:00:00:00:00:01',
    poolSize: planner.poolSize,
    orphans: async (keep) => ({
      taps: f.host.taps.filter((t) => !keep.some((k) => k.tap === t)),
      netns: f.host.netns.filter((ns) => !keep.some((k) => k.clone?.netns === ns)),
    }),
    removeOrphans: async (o) => { for (const t of [...o.taps, ...o.netns]) log.push(`remove orphan ${t}`); },
  };
  return f;
}
