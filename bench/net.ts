// `npm run bench -- net`: guest → world HTTP throughput and connection set-up latency with no policy (internet),
// with an allowlist, and through an upstream HTTP CONNECT proxy (the transparent relay), side by side in one run.
// The guest is a FAKE GUEST (a namespace on Hangar's bridge exactly as a TAP is; no VMM in the path) and the world
// is test/support/world.ts: everything in namespaces this bench creates and removes. Root only.
// Target: the allowlist costs at most 10% of the internet mode's throughput.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { table } from '../src/cli/command.js';
import { createEgress } from '../src/net/egress/egress.js';
import { normalisePolicy, type NetworkPolicyInput } from '../src/net/egress/policy.js';
import { createTestNetwork } from '../test/support/net.js';
import { createFakeGuest, createWorld, UPLINK, WORLD } from '../test/support/world.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { median } from './_stats.js';

const BYTES = 64 * 1024 * 1024;
const hp = WORLD.httpProxy;
const SCENARIOS: [string, NetworkPolicyInput][] = [
  ['internet', { egress: { mode: 'internet' } }],
  ['allowlist', { egress: { mode: 'allowlist', allow: ['allowed.test'] } }],
  ['proxy', { egress: { mode: 'internet', proxy: `http://${hp.user}:${hp.pass}@${hp.address}:${hp.port}` } }],
];

export async function run(opts: BenchOptions): Promise<BenchFigures> {
  if (process.getuid?.() !== 0) throw new Error('bench net needs root (network namespaces)');
  const net = await createTestNetwork({ overrides: { egress: { uplink: UPLINK, resolvers: [WORLD.dns] } } });
  const dir = mkdtempSync(join(tmpdir(), 'hangar-bench-net-'));
  const world = await createWorld(net.cfg);
  const egress = await createEgress(net.cfg, { stateDir: dir });
  const g = await createFakeGuest(net.cfg, '10.213.0.2');
  const target = { ip: g.ip, ifname: g.ifname, index: 990, mac: g.mac };
  const figures: BenchFigures = {};
  const rows: (string | number)[][] = [];
  try {
    let current = normalisePolicy(SCENARIOS[0]![1]);
    await egress.attach(target, current);
    for (const [name, p] of SCENARIOS) {
      const next = normalisePolicy(p);
      await egress.change(target, current, next);
      current = next;
      await g.run(['getent', 'ahostsv4', 'allowed.test']); // the allowlist's address opened through DNS
      const mbit: number[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await g.run(['curl', '-sS', '-o', '/dev/null', '-w', '%{speed_download}', `http://allowed.test/bytes/${BYTES}`], 120_000);
        mbit.push((Number(r.stdout) * 8) / 1e6);
      }
      const connect: number[] = [];
      const first: number[] = [];
      for (let i = 0; i < 15; i++) {
        const r = await g.run(['curl', '-sS', '-o', '/dev/null', '-w', '%{time_connect} %{time_starttransfer}', `http://${WORLD.allowed}/`]);
        const [c, s] = r.stdout.split(' ').map(Number);
        connect.push(c! * 1000);
        first.push(s! * 1000);
      }
      figures[`${name}_mbit`] = Math.round(median(mbit));
      figures[`${name}_connect_ms`] = Number(median(connect).toFixed(2));
      figures[`${name}_first_byte_ms`] = Number(median(first).toFixed(2));
      rows.push([name, Math.round(median(mbit)), median(connect).toFixed(2), median(first).toFixed(2)]);
    }
    const cost = 1 - Number(figures.allowlist_mbit) / Number(figures.internet_mbit);
    figures.allowlist_cost_pct = Number((cost * 100).toFixed(1));
    figures.target_met = cost <= 0.1;
    if (!opts.json) {
      process.stdout.write(table(['policy', 'Mbit/s (median of 3, 64 MiB)', 'TCP connect ms', 'first byte ms'], rows));
      process.stdout.write(`allowlist costs ${figures.allowlist_cost_pct}% of throughput (target ≤ 10%): ${figures.target_met ? 'met' : 'NOT met'}\n`);
    }
    return figures;
  } finally {
    await egress.close();
    await g.destroy();
    await world.destroy();
    await net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
