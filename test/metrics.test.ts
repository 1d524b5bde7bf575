// HangarMetrics on prom-client: Hangar's metric names, types, labels and help, gauges read at scrape time, the
// default process and event-loop metrics, and one registry per instance.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HangarMetrics, metricValue, wireEgressMetrics } from '../src/metrics.js';

function wired(m: HangarMetrics, state: { byState: Record<string, number>; free: number; size: number }): HangarMetrics {
  m.wire({ vmsByState: () => state.byState, poolFree: () => state.free, poolSize: () => state.size });
  return m;
}

test('the exposition keeps every Hangar metric: name, type, help, labels', async () => {
  const m = wired(new HangarMetrics(), { byState: { running: 2, stopped: 1 }, free: 5, size: 8 });
  m.errors.inc({ code: 'VM_NOT_FOUND' });
  m.errors.inc({ code: 'VM_NOT_FOUND' });
  m.proxyBytes.inc({ direction: 'to_vm' }, 40);
  m.requests.inc({ route: '/v1/vms', status: '2xx' });
  m.bootSeconds.observe(2.5);
  const text = await m.render();
  const families: [string, string, string][] = [
    ['hangar_errors_total', 'counter', 'Errors returned, by stable error code'],
    ['hangar_proxy_bytes_total', 'counter', 'Bytes bridged between viewers and VM desktops, by direction'],
    ['hangar_vm_boot_seconds', 'histogram', 'Create/start to ready, seconds'],
    ['hangar_http_requests_total', 'counter', 'HTTP requests, by route and status class'],
    ['hangar_vms', 'gauge', 'VMs by state'],
    ['hangar_ip_pool_free', 'gauge', 'Free guest addresses in the pool'],
    ['hangar_ip_pool_size', 'gauge', 'Guest addresses in the pool'],
  ];
  for (const [name, type, help] of families) {
    assert.ok(text.includes(`# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`), name);
  }
  const lines = [
    'hangar_errors_total{code="VM_NOT_FOUND"} 2',
    'hangar_proxy_bytes_total{direction="to_vm"} 40',
    'hangar_http_requests_total{route="/v1/vms",status="2xx"} 1',
    'hangar_vm_boot_seconds_bucket{le="2"} 0',
    'hangar_vm_boot_seconds_bucket{le="3"} 1',
    'hangar_vm_boot_seconds_bucket{le="+Inf"} 1',
    'hangar_vm_boot_seconds_sum 2.5',
    'hangar_vm_boot_seconds_count 1',
    'hangar_vms{state="running"} 2',
    'hangar_vms{state="stopped"} 1',
    'hangar_ip_pool_free 5',
    'hangar_ip_pool_size 8',
  ];
  for (const l of lines) assert.match(text, new RegExp(`^${l.replace(/[{}+.?()[\]\\]/g, '\\$&')}$`, 'm'), l);
  assert.equal(m.contentType, 'text/plain; version=0.0.4; charset=utf-8');
});

test('gauges are read at scrape time, and a state no VM is in any more disappears', async () => {
  const state = { byState: { running: 1 } as Record<string, number>, free: 3, size: 4 };
  const m = wired(new HangarMetrics({ defaultMetrics: false }), state);
  assert.match(await m.render(), /^hangar_vms\{state="running"\} 1$/m);
  state.byState = { stopped: 1 };
  state.free = 4;
  const text = await m.render();
  assert.match(text, /^hangar_vms\{state="stopped"\} 1$/m);
  assert.doesNotMatch(text, /state="running"/);
  assert.match(text, /^hangar_ip_pool_free 4$/m);
});

test('before wire() the gauges are not exported; a second wire() replaces the readers', async () => {
  const m = new HangarMetrics({ defaultMetrics: false });
  assert.doesNotMatch(await m.render(), /hangar_ip_pool_free/);
  wired(m, { byState: {}, free: 1, size: 1 });
  wired(m, { byState: {}, free: 7, size: 9 });
  const text = await m.render();
  assert.match(text, /^hangar_ip_pool_free 7$/m);
  assert.equal(text.match(/^# TYPE hangar_ip_pool_free gauge$/gm)?.length, 1);
});

test('the default process and event-loop metrics are exported (standard names)', async () => {
  const text = await new HangarMetrics().render();
  assert.match(text, /^# TYPE process_cpu_seconds_total counter$/m);
  assert.match(text, /^process_resident_memory_bytes \d+/m);
  assert.match(text, /^# TYPE nodejs_eventloop_lag_seconds gauge$/m);
  assert.match(text, /^nodejs_eventloop_lag_p99_seconds [\d.e+-]+$/m);
  assert.match(text, /^# TYPE nodejs_gc_duration_seconds histogram$/m);
  assert.doesNotMatch(await new HangarMetrics({ defaultMetrics: false }).render(), /process_cpu_seconds_total/);
});

test('two instances do not share values (one registry each, not the global one)', async () => {
  const a = wired(new HangarMetrics(), { byState: { running: 1 }, free: 1, size: 2 });
  const b = wired(new HangarMetrics(), { byState: { paused: 3 }, free: 9, size: 9 });
  a.errors.inc({ code: 'CONFLICT' }, 2);
  b.errors.inc({ code: 'CONFLICT' });
  b.proxyBytes.inc({ direction: 'to_viewer' }, 7);
  assert.equal(await metricValue(a.errors, { code: 'CONFLICT' }), 2);
  assert.equal(await metricValue(b.errors, { code: 'CONFLICT' }), 1);
  assert.equal(await metricValue(a.proxyBytes, { direction: 'to_viewer' }), 0);
  const [ta, tb] = [await a.render(), await b.render()];
  assert.match(ta, /^hangar_vms\{state="running"\} 1$/m);
  assert.doesNotMatch(ta, /paused/);
  assert.match(tb, /^hangar_ip_pool_free 9$/m);
});

test('metricValue matches labels exactly', async () => {
  const m = new HangarMetrics({ defaultMetrics: false });
  m.requests.inc({ route: '/a', status: '2xx' }, 3);
  m.requests.inc({ route: '/a', status: '4xx' });
  assert.equal(await metricValue(m.requests, { route: '/a', status: '2xx' }), 3);
  assert.equal(await metricValue(m.requests, { route: '/a', status: '4xx' }), 1);
  assert.equal(await metricValue(m.requests, { route: '/a' }), 0, 'a subset of the labels is not a match');
  assert.equal(await metricValue(m.requests, { route: '/b', status: '2xx' }), 0);
});

test("a running VM's cgroup limits are gauges by VM, read at scrape time", async () => {
  const m = new HangarMetrics({ defaultMetrics: false });
  let limits = [{ vm: 'vm-1', cpuCores: 0.3, memMiB: 768, pids: 512 }];
  m.wire({ vmsByState: () => ({}), poolFree: () => 0, poolSize: () => 0, vmLimits: () => limits });
  let text = await m.render();
  assert.match(text, /^hangar_vm_limit_cpu_cores\{vm="vm-1"\} 0\.3$/m);
  assert.match(text, new RegExp(`^hangar_vm_limit_memory_bytes\\{vm="vm-1"\\} ${768 * 1024 * 1024}$`, 'm'));
  assert.match(text, /^hangar_vm_limit_pids\{vm="vm-1"\} 512$/m);
  limits = [];
  text = await m.render();
  assert.doesNotMatch(text, /vm="vm-1"/, 'a VM that no longer runs is not exported');
});

test('egress gauges: bytes in/out and denials per VM id, DNS queries by result, read once per scrape', async () => {
  const m = new HangarMetrics({ defaultMetrics: false });
  let reads = 0;
  wireEgressMetrics(m, async () => {
    reads++;
    return { perVm: [{ vm: 'vm-1', bytesIn: 2000, bytesOut: 300, denied: 4 }], dns: { queries: 9, refused: 2, forwarded: 7, upstreamFailures: 0 } };
  });
  const text = await m.render();
  assert.match(text, /hangar_vm_network_bytes\{vm="vm-1",direction="in"\} 2000/);
  assert.match(text, /hangar_vm_network_bytes\{vm="vm-1",direction="out"\} 300/);
  assert.match(text, /hangar_vm_denied_packets\{vm="vm-1"\} 4/);
  assert.match(text, /hangar_dns_queries\{result="refused"\} 2/);
  assert.equal(reads, 1);
});
