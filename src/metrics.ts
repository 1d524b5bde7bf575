// A small Prometheus registry: counters, gauges read at scrape time, and histograms. Text exposition format 0.0.4.

type Labels = Record<string, string>;
const key = (l: Labels): string => Object.keys(l).sort().map((k) => `${k}="${l[k]!.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',');

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  render(): string[];
}

export class Counter implements Family {
  readonly type = 'counter';
  private values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(key(labels)) ?? 0;
  }
  render(): string[] {
    return [...this.values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ''} ${v}`);
  }
}

export class Gauge implements Family {
  readonly type = 'gauge';
  constructor(readonly name: string, readonly help: string, private readonly read: () => [Labels, number][]) {}
  render(): string[] {
    return this.read().map(([l, v]) => `${this.name}${Object.keys(l).length ? `{${key(l)}}` : ''} ${v}`);
  }
}

export class Histogram implements Family {
  readonly type = 'histogram';
  private counts: number[];
  private sum = 0;
  private n = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.sum += v;
    this.n += 1;
    this.buckets.forEach((b, i) => { if (v <= b) this.counts[i]! += 1; });
  }
  render(): string[] {
    return [
      ...this.buckets.map((b, i) => `${this.name}_bucket{le="${b}"} ${this.counts[i]}`),
      `${this.name}_bucket{le="+Inf"} ${this.n}`,
      `${this.name}_sum ${this.sum}`,
      `${this.name}_count ${this.n}`,
    ];
  }
}

export class Registry {
  private families: Family[] = [];
  add<F extends Family>(f: F): F {
    this.families.push(f);
    return f;
  }
  render(): string {
    return this.families.flatMap((f) => [`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.render()]).join('\n') + '\n';
  }
}

/** The metrics Hangar exports; gauges are wired by the controller to live state. */
export class HangarMetrics {
  readonly registry = new Registry();
  readonly errors = this.registry.add(new Counter('hangar_errors_total', 'Errors returned, by stable error code'));
  readonly proxyBytes = this.registry.add(new Counter('hangar_proxy_bytes_total', 'Bytes bridged between viewers and VM desktops, by direction'));
  readonly bootSeconds = this.registry.add(new Histogram('hangar_vm_boot_seconds', 'Create/start to ready, seconds', [0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120]));
  readonly requests = this.registry.add(new Counter('hangar_http_requests_total', 'HTTP requests, by route and status class'));

  wire(read: { vmsByState: () => Record<string, number>; poolFree: () => number; poolSize: () => number }): void {
    this.registry.add(new Gauge('hangar_vms', 'VMs by state', () => Object.entries(read.vmsByState()).map(([state, n]) => [{ state }, n])));
    this.registry.add(new Gauge('hangar_ip_pool_free', 'Free guest addresses in the pool', () => [[{}, read.poolFree()]]));
    this.registry.add(new Gauge('hangar_ip_pool_size', 'Guest addresses in the pool', () => [[{}, read.poolSize()]]));
  }
}
