// The viewer page's adaptive quality (src/desktop/assets/quality.js, a browser module with no DOM): a slow link
// lowers noVNC's JPEG quality step by step down to the floor, a fast one brings it back up to the page's setting,
// small updates are not timed, changes are spaced by the cooldown, and the WebSocket wiring times real
// FramebufferUpdateRequests only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../support/env.js';

interface Policy {
  quality: number;
  kbps: number | null;
  samples: number;
  data(bytes: number, t: number): void;
  request(t: number): number | null;
}
interface QualityModule {
  AdaptiveQuality: new (opts?: Record<string, number>) => Policy;
  QUALITY_DEFAULTS: { max: number; min: number; lowKbps: number; highKbps: number; minSampleBytes: number; cooldownMs: number };
  FB_UPDATE_REQUEST: number;
  messageType(data: unknown): number;
  adaptQuality(ws: unknown, onChange: (q: number) => void, opts?: Record<string, number>): Policy;
}
const q = (await import(pathToFileURL(join(ROOT, 'src', 'desktop', 'assets', 'quality.js')).href)) as QualityModule;

/** One update of `bytes` arriving over `ms`, starting at t, followed by the next request. */
function update(p: Policy, t: number, bytes: number, ms: number): number | null {
  p.data(bytes / 2, t);
  p.data(bytes / 2, t + ms);
  return p.request(t + ms);
}

test('a slow link lowers the quality a step per cooldown down to the floor; a fast one raises it back to the ceiling', () => {
  const p = new q.AdaptiveQuality();
  const { max, min, cooldownMs } = q.QUALITY_DEFAULTS;
  assert.equal(p.quality, max);
  // 128 KiB in 500 ms: ~2 Mbit/s, below lowKbps.
  const seen: number[] = [];
  let t = 0;
  for (let i = 0; i < 100; i++) {
    const r = update(p, t, 128 * 1024, 500);
    if (r !== null) seen.push(r);
    t += 600;
  }
  assert.deepEqual(seen, Array.from({ length: max - min }, (_, i) => max - 1 - i), 'one step at a time, down to the floor');
  assert.equal(p.quality, min);
  // 1 MiB in 20 ms: ~400 Mbit/s.
  const up: number[] = [];
  for (let i = 0; i < 200; i++) {
    const r = update(p, t, 1024 * 1024, 20);
    if (r !== null) up.push(r);
    t += cooldownMs / 4;
  }
  assert.deepEqual(up, Array.from({ length: max - min }, (_, i) => min + 1 + i), 'back up to the page setting, never above');
  assert.equal(p.quality, max);
});

test('changes are spaced by the cooldown; small updates (a key echo) are not timed', () => {
  const p = new q.AdaptiveQuality();
  const times: number[] = [];
  for (let t = 0; t < 10_000; t += 100) if (update(p, t, 256 * 1024, 1000) !== null) times.push(t + 1000);
  for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! >= q.QUALITY_DEFAULTS.cooldownMs, `${times}`);
  const small = new q.AdaptiveQuality();
  for (let t = 0; t < 20_000; t += 500) assert.equal(update(small, t, 2_000, 400), null);
  assert.equal(small.samples, 0);
  assert.equal(small.quality, q.QUALITY_DEFAULTS.max);
});

test('the WebSocket wiring: only FramebufferUpdateRequests close an update, and the change reaches onChange', () => {
  let clock = 0;
  const realNow = performance.now.bind(performance);
  performance.now = () => clock;
  try {
    const listeners: ((e: { data: ArrayBuffer }) => void)[] = [];
    const sent: number[] = [];
    const ws = {
      addEventListener: (_: string, f: (e: { data: ArrayBuffer }) => void) => { listeners.push(f); },
      send: (d: Uint8Array) => { sent.push(d[0]!); },
    };
    const changes: number[] = [];
    const policy = q.adaptQuality(ws, (level) => changes.push(level), { cooldownMs: 0 });
    for (let i = 0; i < 3; i++) {
      for (const l of listeners) l({ data: new ArrayBuffer(100 * 1024) });
      clock += 400;
      ws.send(new Uint8Array([4, 1, 0, 0, 0, 0, 0, 0x61])); // a KeyEvent: not the end of an update
      for (const l of listeners) l({ data: new ArrayBuffer(100 * 1024) });
      clock += 400;
      ws.send(new Uint8Array([q.FB_UPDATE_REQUEST, 1, 0, 0, 0, 0, 5, 0, 3, 32]));
      clock += 100;
    }
    assert.equal(policy.samples, 3);
    assert.deepEqual(changes, [5, 4, 3], '200 KiB in 800 ms is ~2 Mbit/s: down a step per update (no cooldown)');
    assert.deepEqual(sent, [4, 3, 4, 3, 4, 3], 'every message still goes out, in order');
    assert.equal(q.messageType(new Uint8Array([3, 0]).buffer), 3);
    assert.equal(q.messageType(new ArrayBuffer(0)), -1);
  } finally {
    performance.now = realNow;
  }
});

test('the viewer page wires it: its WebSocket goes through adaptQuality and a change sets noVNC qualityLevel', async () => {
  const { readFile } = await import('node:fs/promises');
  const page = await readFile(join(ROOT, 'src', 'desktop', 'assets', 'viewer.js'), 'utf8');
  assert.match(page, /import \{ adaptQuality \} from '\.\/quality\.js'/);
  assert.match(page, /adaptQuality\(ws, \(level\) => \{ if \(current\) current\.qualityLevel = level; \}/);
});
