// Pool metrics in /metrics, registered on the controller's registry: members by pool and state (read at scrape
// time), claims, misses, claim and refill durations.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PoolView } from './plan.js';

export interface PoolMetrics {
  claimed(pool: string, seconds: number): void;
  missed(pool: string): void;
  refilled(pool: string, seconds: number): void;
}

export function poolMetrics(registry: Registry, read: () => PoolView[]): PoolMetrics {
  new Gauge({
    name: 'hangar_pool_vms', help: 'Warm pool members by pool and state (ready: paused and claimable; filling: being restored), and the pool size', labelNames: ['pool', 'state'], registers: [registry],
    collect() {
      this.reset();
      for (const p of read()) {
        this.set({ pool: p.name, state: 'ready' }, p.ready);
        this.set({ pool: p.name, state: 'filling' }, p.filling);
        this.set({ pool: p.name, state: 'size' }, p.size);
      }
    },
  });
  const claims = new Counter({ name: 'hangar_pool_claims_total', help: 'Claims served by a ready pool member', labelNames: ['pool'], registers: [registry] });
  const misses = new Counter({ name: 'hangar_pool_misses_total', help: 'Claims that found no ready member (served by a plain clone)', labelNames: ['pool'], registers: [registry] });
  const claimSeconds = new Histogram({ name: 'hangar_pool_claim_seconds', help: 'Claim to ready (resume, resync, identity), seconds', labelNames: ['pool'], buckets: [0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2, 5], registers: [registry] });
  const refillSeconds = new Histogram({ name: 'hangar_pool_refill_seconds', help: 'One member made: create to restored, checked and paused, seconds', labelNames: ['pool'], buckets: [1, 2, 3, 5, 8, 13, 21, 34, 60], registers: [registry] });
  return {
    claimed: (pool, s) => { claims.inc({ pool }); claimSeconds.observe({ pool }, s); },
    missed: (pool) => { misses.inc({ pool }); },
    refilled: (pool, s) => { refillSeconds.observe({ pool }, s); },
  };
}
