// `hangar events` against a fake SSE server: one line per event (or NDJSON), the --since and --vm queries, the
// end of the stream and an interruption both exit 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { compactData, formatEvent, sinceQuery } from '../../src/cli/events.js';
import { fail, fakeApi, fakeVm, hangar, ok } from './fake-api.js';

const EVENTS = [
  { seq: 7, at: '2026-01-01T00:00:01.000Z', vmId: 'vm-1a2b3c4d', type: 'vm.created', data: { name: 'alice', image: 'desktop-0123abcd' } },
  { seq: 8, at: '2026-01-01T00:00:02.000Z', vmId: 'vm-1a2b3c4d', type: 'vm.state', data: { from: 'booting', to: 'ready', bootMs: 4200 } },
  { seq: 9, at: '2026-01-01T00:00:03.000Z', vmId: null, type: 'host.note', data: { message: 'two words' } },
];

/** Writes the events as the controller does, split at awkward places, with a ping; then ends, or stays open. */
function sse(end: boolean) {
  return (res: ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const text = EVENTS.map((e) => `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join(': ping\n\n');
    const cut = Math.floor(text.length / 2);
    res.write(text.slice(0, 5));
    setTimeout(() => { res.write(text.slice(5, cut)); setTimeout(() => { res.write(text.slice(cut)); if (end) res.end(); }, 20); }, 20);
  };
}

test('hangar events prints one line per event and exits 0 when the stream ends', { timeout: 10_000 }, async () => {
  const api = await fakeApi((r) => (r.path === '/v1/events' ? sse(true) : ok({ vms: [fakeVm()] })));
  try {
    const r = await hangar(['events'], api.env);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out,
      '2026-01-01T00:00:01.000Z      7  vm.created      vm-1a2b3c4d  name=alice image=desktop-0123abcd\n'
      + '2026-01-01T00:00:02.000Z      8  vm.state        vm-1a2b3c4d  from=booting to=ready bootMs=4200\n'
      + '2026-01-01T00:00:03.000Z      9  host.note       -            message="two words"\n');
    const ev = api.requests.find((q) => q.path === '/v1/events')!;
    assert.equal(ev.query.size, 0, "--since now (the default) sends no since: live events only");
    assert.equal(ev.headers.accept, 'text/event-stream');

    const j = await hangar(['events', '--json'], api.env);
    assert.deepEqual(j.out.trimEnd().split('\n').map((l) => JSON.parse(l)), EVENTS, '--json: NDJSON, one event record per line');
  } finally {
    await api.close();
  }
});

test('--since all|N|now and --vm (resolved to the id) become the query', { timeout: 10_000 }, async () => {
  const api = await fakeApi((r) => (r.path === '/v1/events' ? sse(true) : ok({ vms: [fakeVm()] })));
  try {
    const queries: string[] = [];
    for (const argv of [['--since', 'all'], ['--since', '8'], ['--since', 'now'], ['--vm', '1a2b', '--since', 'all']]) {
      assert.equal((await hangar(['events', ...argv], api.env)).code, 0);
      queries.push(String(api.requests.filter((q) => q.path === '/v1/events').at(-1)!.query));
    }
    assert.deepEqual(queries, ['since=0', 'since=8', '', 'since=0&vm=vm-1a2b3c4d']);
    const before = api.requests.length;
    for (const bad of ['-1', 'yesterday', '1.5']) {
      const r = await hangar(['events', '--since', bad], api.env);
      assert.equal(r.code, 2);
      assert.match(r.err, /--since must be an event number, 'all' or 'now'/);
    }
    assert.equal(api.requests.length, before);
  } finally {
    await api.close();
  }
});

test('an interrupted follow (Ctrl-C) exits 0 after what it printed', { timeout: 10_000 }, async () => {
  const ctl = new AbortController();
  const api = await fakeApi((r) => (r.path === '/v1/events' ? (res) => { sse(false)(res); setTimeout(() => ctl.abort(), 300); } : ok({ vms: [] })));
  try {
    const r = await hangar(['events'], api.env, ctl.signal);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.split('\n').length - 1, 3);
  } finally {
    await api.close();
  }
});

test('an error answer to the stream is its code and exit', async () => {
  const api = await fakeApi(() => fail('UNAUTHORIZED', 'a valid bearer token is required'));
  try {
    const r = await hangar(['events', '--json'], api.env);
    assert.equal(r.code, 2);
    assert.equal(JSON.parse(r.out).error.code, 'UNAUTHORIZED');
  } finally {
    await api.close();
  }
});

test('sinceQuery, compactData and formatEvent', () => {
  assert.deepEqual([sinceQuery(undefined), sinceQuery('now'), sinceQuery('all'), sinceQuery('42')], [null, null, 0, 42]);
  assert.equal(compactData({ a: 'x', b: 2, c: null, d: { e: 1 }, f: '' }), 'a=x b=2 c=null d={"e":1} f=""');
  assert.equal(compactData({ long: 'x'.repeat(500) }).length, 240);
  assert.match(formatEvent({ type: 'x' }), /^- +- {2}x/);
});
