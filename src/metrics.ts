// The metrics Hangar exports, on prom-client: one Registry per controller (never prom-client's global one, so two
// controllers in one process keep their own values), Hangar's own counters, gauges read at scrape time, a
// histogram, and prom-client's default process and Node.js metrics (CPU, memory, fds, event-loop lag, GC).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

type Labels = Record<string, string>;

/** What the controller reads when Prometheus scrapes: live state, never a cached copy. */
export interface MetricsReaders {
  vmsByState: () => Record<string, number>;
  poolFree: () => number;
  poolSize: () => number;
  /** The cgroup limits of the VMs whose VMM runs (src/vmm/cgroup/). */
  vmLimits?: () => { vm: string; cpuCores: number; memMiB: number; pids: number }[];
}

/** The egress layer's numbers at scrape time (nft counters and netd's): per VM id, and DNS by outcome. */
export interface EgressSample {
  perVm: { vm: string; bytesIn: number; bytesOut: number; denied: number }[];
  dns: { queries: number; refused: number; forwarded: number; upstreamFailures: number } | null;
}

export interface MetricsOptions {
  /** prom-client's default process_* and nodejs_* metrics (default true). */
  defaultMetrics?: boolean;
}

export class HangarMetrics {
  readonly registry = new Registry();
  readonly errors = new Counter({ name: 'hangar_errors_total', help: 'Errors returned, by stable error code', labelNames: ['code'], registers: [this.registry] });
  readonly proxyBytes = new Counter({ name: 'hangar_proxy_bytes_total', help: 'Bytes bridged between viewers and VM desktops, by direction', labelNames: ['direction'], registers: [this.registry] });
  readonly bootSeconds = new Histogram({ name: 'hangar_vm_boot_seconds', help: 'Create/start to ready, seconds', buckets: [0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120], registers: [this.registry] });
  readonly requests = new Counter({ name: 'hangar_http_requests_total', help: 'HTTP requests, by route and status class', labelNames: ['route', 'status'], registers: [this.registry] });
  private readers: MetricsReaders | null = null;

  constructor(opts: MetricsOptions = {}) {
    // Standard names (process_cpu_seconds_total, nodejs_eventloop_lag_seconds, ...): stock dashboards read them.
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** The Prometheus text exposition's content type (format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition of every metric; gauges read their state now. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Wires the gauges to live state (a second call replaces the readers). Until then they are not exported. */
  wire(read: MetricsReaders): void {
    const first = this.readers === null;
    this.readers = read;
    if (!first) return;
    const readers = (): MetricsReaders => this.readers!;
    new Gauge({
      name: 'hangar_vms', help: 'VMs by state', labelNames: ['state'], registers: [this.registry],
      collect() {
        this.reset(); // a state no VM is in any more is not exported
        for (const [state, n] of Object.entries(readers().vmsByState())) this.set({ state }, n);
      },
    });
    new Gauge({ name: 'hangar_ip_pool_free', help: 'Free guest addresses in the pool', registers: [this.registry], collect() { this.set(readers().poolFree()); } });
    const limit = (name: string, help: string, pick: (l: { cpuCores: number; memMiB: number; pids: number }) => number): void => {
      new Gauge({
        name, help, labelNames: ['vm'], registers: [this.registry],
        collect() {
          this.reset();
          for (const l of readers().vmLimits?.() ?? []) this.set({ vm: l.vm }, pick(l));
        },
      });
    };
    limit('hangar_vm_limit_cpu_cores', "A running VM's CPU limit (its VMM's cgroup), in cores", (l) => l.cpuCores);
    limit('hangar_vm_limit_memory_bytes', "A running VM's memory limit (guest memory + the VMM's own)", (l) => l.memMiB * 1024 * 1024);
    limit('hangar_vm_limit_pids', "A running VM's limit on its VMM's processes and threads", (l) => l.pids);
    new Gauge({ name: 'hangar_ip_pool_size', help: 'Guest addresses in the pool', registers: [this.registry], collect() { this.set(readers().poolSize()); } });
  }
}

/** Egress gauges read at scrape time: the values are the kernel's and netd's counters (they reset with them). */
export function wireEgressMetrics(m: HangarMetrics, read: () => Promise<EgressSample>): void {
  let last: Promise<EgressSample> | null = null;
  // One read per scrape for all three gauges.
  const sample = (): Promise<EgressSample> => (last ??= read().finally(() => { setTimeout(() => { last = null; }, 100); }));
  new Gauge({
    name: 'hangar_vm_network_bytes', help: 'Bytes a VM sent (out) and received (in) through its gateway, by VM id', labelNames: ['vm', 'direction'], registers: [m.registry],
    async collect() {
      this.reset();
      for (const v of (await sample()).perVm) { this.set({ vm: v.vm, direction: 'out' }, v.bytesOut); this.set({ vm: v.vm, direction: 'in' }, v.bytesIn); }
    },
  });
  new Gauge({
    name: 'hangar_vm_denied_packets', help: 'Packets a VM\'s policy refused (blocked destinations, connection limit), by VM id', labelNames: ['vm'], registers: [m.registry],
    async collect() { this.reset(); for (const v of (await sample()).perVm) this.set({ vm: v.vm }, v.denied); },
  });
  new Gauge({
    name: 'hangar_dns_queries', help: 'Guest DNS queries at the gateway, by result (refused: by policy)', labelNames: ['result'], registers: [m.registry],
    async collect() {
      this.reset();
      const d = (await sample()).dns;
      if (!d) return;
      this.set({ result: 'all' }, d.queries); this.set({ result: 'refused' }, d.refused); this.set({ result: 'forwarded' }, d.forwarded); this.set({ result: 'upstream_failed' }, d.upstreamFailures);
    },
  });
}

/** The current value of a counter or gauge for exactly these labels (0 if never set): for tests and checks. */
export async function metricValue(metric: Counter | Gauge, labels: Labels = {}): Promise<number> {
  const want = Object.entries(labels);
  const { values } = await metric.get();
  const hit = values.find((v) => {
    const got = Object.entries(v.labels).filter(([, x]) => x !== undefined);
    return got.length === want.length && want.every(([k, x]) => String(v.labels[k]) === x);
  });
  return hit?.value ?? 0;
}
