// `npm run bench -- sessions`: warm pools against the other ways to a ready desktop (desktop profile): claim→ready
// from a pool (p50/p99; a claim is take + resume + hostname/clock/entropy sent; when the guest acknowledged them
// and when its VNC banner answers are timed too),
// against cold boot→ready and plain snapshot restore→ready; the memory (PSS, RSS, and how much of it is shared) of
// 5 running clones of one snapshot against 5 cold-booted VMs, per VM; and how many desktop VMs of each kind fit in
// 16 GiB by that PSS. Real QEMU under TCG in namespaces it creates and removes (root). Same guest image as
// bench/snapshot (test/snapshot/guest-image.ts: the resume agent installed).
import { Agents } from '../src/agent/agents.js';
import { table } from '../src/cli/command.js';
import { VNC_PORT } from '../src/guest-protocol.js';
import { readBanner } from '../src/net/dial.js';
import { PoolService } from '../src/pool/service.js';
import { normalizeCreate } from '../src/vm/input.js';
import { QemuDriver } from '../src/vmm/qemu/driver.js';
import { createTestController, type TestController } from '../test/support/controller.js';
import { makeTestGuestImage, type TestGuestImage } from '../test/snapshot/guest-image.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { memoryKiB, timed, type Mem } from './_vm.js';
import { median, percentile, round } from './_stats.js';

export const summary = 'Warm pools: claim→ready p50/p99 vs cold boot and plain restore; PSS per clone vs per cold VM; desktops in 16 GiB';

const CLAIMS = Number(process.env.HANGAR_BENCH_CLAIMS ?? 10);
const RUNS = Number(process.env.HANGAR_BENCH_RUNS ?? 3);
const FLEET = Number(process.env.HANGAR_BENCH_FLEET ?? 5);
const POOL_SIZE = 2;
const HOST_MIB = 16 * 1024;


async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}


/** N VMs up at once (one after another: the host has 2 cores), their VMMs' memory per VM, then destroyed. */
async function fleet(t: TestController, req: Parameters<TestController['manager']['create']>[0]): Promise<Mem> {
  const up = [];
  try {
    for (let i = 0; i < FLEET; i++) up.push(await (await t.manager.create(req)).ready);
    await new Promise((r) => setTimeout(r, 3000)); // let the guests settle after boot/restore
    const all = await Promise.all(up.map((v) => memoryKiB(v.pid!)));
    const per = (k: keyof Mem): number => all.reduce((a, m) => a + m[k], 0) / all.length / 1024;
    return { pss: per('pss'), rss: per('rss'), shared: per('shared'), private: per('private') };
  } finally {
    for (const v of up) await t.manager.destroy(v.id);
  }
}

export async function run({ json }: BenchOptions): Promise<BenchFigures> {
  const figures: BenchFigures = { claims: CLAIMS, runs: RUNS, fleet: FLEET, pool_size: POOL_SIZE };
  let img: TestGuestImage | undefined;
  let t: TestController | undefined;
  let pools: PoolService | undefined;
  try {
    img = await makeTestGuestImage('desktop');
    t = await createTestController({ net: { cidr: '10.232.0.0/24' }, manager: { images: img.source, drivers: { qemu: new QemuDriver({ guestAgent: true }) } } });
    const tc = t;
    const snap = await tc.manager.snapshots.create({ image: 'desktop' });
    const m = snap.manifest;
    Object.assign(figures, {
      snapshot_state_kib: round(m.files['state.bin']!.size / 1024, 0), snapshot_ram_file: m.files['memory.ram'] !== undefined,
      snapshot_paused_ms: m.durationsMs.state + m.durationsMs.disk,
    });
    const agents = new Agents({ channel: (id) => tc.manager.guestChannel(id), log: () => undefined });
    pools = new PoolService(tc.store.pools, tc.manager, tc.manager.snapshots, agents, { memoryBudgetMiB: null, parallel: 1, intervalMs: 500 });
    pools.setExpiry = (id, expiresAt) => tc.store.patchVm(id, { expiresAt });
    await pools.create({ name: 'bench', size: POOL_SIZE, snapshot: m.id });
    pools.start();
    const claim: number[] = [];
    const banner: number[] = [];
    const steps: Record<string, number[]> = {};
    const identity: number[] = [];
    let synced = 0;
    for (let i = 0; i < CLAIMS; i++) {
      await until(() => pools!.get('bench').ready >= 1, 180_000);
      await new Promise((r) => setTimeout(r, 300));
      const t0 = performance.now();
      const r = await pools.claim('bench', { tenant: 'default' }, { name: `claimed-${i}` });
      const t1 = performance.now();
      await readBanner(tc.manager.vmDialer, r.vm.net!.ip, VNC_PORT, 5000);
      const t2 = performance.now();
      if (!r.hit) throw new Error('the pool missed although a member was ready');
      claim.push(t1 - t0);
      banner.push(t2 - t0);
      const id = await r.identity;
      identity.push(id.ms);
      if (id.synced) synced++;
      for (const s of r.timings) (steps[s.name.replace(/^vm-[0-9a-f]+: /, '').replace(/ for .*$/, '')] ??= []).push(s.ms);
      agents.invalidate(r.vm.id, true);
      await tc.manager.destroy(r.vm.id);
    }
    const refillMs = pools.get('bench').refillMs;
    await pools.remove('bench');
    await pools.stop();
    pools = undefined;
    const cold: number[] = [];
    const restore: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      cold.push(await timed(tc, normalizeCreate({ profile: 'desktop' })));
      restore.push(await timed(tc, normalizeCreate({ fromSnapshot: m.id })));
    }
    const clones = await fleet(tc, normalizeCreate({ fromSnapshot: m.id }));
    const boots = await fleet(tc, normalizeCreate({ profile: 'desktop' }));
    await tc.manager.snapshots.remove(m.id);
    Object.assign(figures, {
      claim_ready_ms_p50: round(median(claim), 1), claim_ready_ms_p99: round(percentile(claim, 99), 1),
      claim_vnc_banner_ms_p50: round(median(banner), 1), claim_vnc_banner_ms_p99: round(percentile(banner, 99), 1),
      claim_identity_acked_ms_p50: round(median(identity), 1), claim_identity_acked_ms_p99: round(percentile(identity, 99), 1), claims_identity_acked: synced,
      cold_ready_ms_p50: Math.round(median(cold)), cold_ready_ms_p99: Math.round(percentile(cold, 99)),
      restore_ready_ms_p50: Math.round(median(restore)), restore_ready_ms_p99: Math.round(percentile(restore, 99)),
      refill_ms_last: refillMs,
      clone_pss_mib: round(clones.pss, 0), clone_rss_mib: round(clones.rss, 0), clone_shared_mib: round(clones.shared, 0), clone_private_mib: round(clones.private, 0),
      cold_pss_mib: round(boots.pss, 0), cold_rss_mib: round(boots.rss, 0), cold_shared_mib: round(boots.shared, 0), cold_private_mib: round(boots.private, 0),
      clone_to_cold_pss: round(clones.pss / boots.pss, 2),
      fit_16gib_clones: Math.floor(HOST_MIB / clones.pss), fit_16gib_cold: Math.floor(HOST_MIB / boots.pss),
      density_gain: round(boots.pss / clones.pss, 1),
    });
    for (const [k, v] of Object.entries(steps)) figures[`claim_step_${k.replace(/[^a-z0-9]+/g, '_')}_ms_p50`] = round(median(v), 1);
    if (!json) {
      process.stdout.write(table(['path to a ready desktop', 'p50 ms', 'p99 ms', 'samples'], [
        ['claim from a warm pool (identity given)', String(figures.claim_ready_ms_p50), String(figures.claim_ready_ms_p99), String(CLAIMS)],
        ['claim → VNC banner from the host', String(figures.claim_vnc_banner_ms_p50), String(figures.claim_vnc_banner_ms_p99), String(CLAIMS)],
        ['claim → guest acknowledged hostname/clock/entropy', String(figures.claim_identity_acked_ms_p50), String(figures.claim_identity_acked_ms_p99), String(CLAIMS)],
        ['plain snapshot restore → ready', String(figures.restore_ready_ms_p50), String(figures.restore_ready_ms_p99), String(RUNS)],
        ['cold boot → ready', String(figures.cold_ready_ms_p50), String(figures.cold_ready_ms_p99), String(RUNS)],
      ]));
      process.stdout.write('\n' + table([`per VM (${FLEET} running, desktop)`, 'PSS MiB', 'RSS MiB', 'shared MiB', 'private MiB', `fit in 16 GiB`], [
        ['clone of one snapshot', String(figures.clone_pss_mib), String(figures.clone_rss_mib), String(figures.clone_shared_mib), String(figures.clone_private_mib), String(figures.fit_16gib_clones)],
        ['cold-booted', String(figures.cold_pss_mib), String(figures.cold_rss_mib), String(figures.cold_shared_mib), String(figures.cold_private_mib), String(figures.fit_16gib_cold)],
      ]));
      process.stdout.write('\n' + table(['figure', 'value'], Object.entries(figures).map(([k, v]) => [k, String(v)])));
    }
    return figures;
  } finally {
    await pools?.stop();
    await t?.destroy();
    img?.remove();
  }
}
