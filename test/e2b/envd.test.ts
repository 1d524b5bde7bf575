// envd's pieces without the SDK: who a request is for (sandbox header, access token, a sandbox that is gone), the
// user of a Basic header, end events as envd words them, keepalive intervals, the streaming multipart reader (parts
// split anywhere, backpressure) and the timeout loop (kill, or pause with autoPause).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { userOf } from '../../src/e2b/context.js';
import { authorizeEnvd } from '../../src/e2b/envd.js';
import { entryOf, eventOf, permissionString } from '../../src/e2b/filesystem.js';
import { newAccessToken } from '../../src/e2b/model.js';
import { boundaryOf, parsePartHeaders, readMultipart } from '../../src/e2b/multipart.js';
import { endEvent, keepaliveMs, shellCommand } from '../../src/e2b/process.js';
import { desktopCommand, unquote } from '../../src/e2b/desktop.js';
import { E2bState, startTimeoutLoop } from '../../src/e2b/state.js';

const fields = (token: string, endAt = Date.now() + 60_000, autoPause = false) => ({ templateId: 'base', metadata: {}, envs: {}, envdAccessToken: token, startedAt: '', endAt, autoPause });

test('envd requests: the sandbox header, its token, and a sandbox that is gone', () => {
  const s = new E2bState();
  const token = newAccessToken();
  s.set('vm-00000001', fields(token));
  assert.deepEqual(authorizeEnvd(s, 'vm-00000001', token), { ok: true, vmId: 'vm-00000001' });
  assert.equal((authorizeEnvd(s, 'vm-00000001', 'nope') as { status: number }).status, 401);
  assert.equal((authorizeEnvd(s, 'vm-00000001', undefined) as { status: number }).status, 401);
  assert.equal((authorizeEnvd(s, 'vm-00000009', token) as { status: number }).status, 502, 'unknown or killed: the SDK\'s timeout/not running');
  assert.equal((authorizeEnvd(s, undefined, token) as { status: number }).status, 400);
});

test('the user of Basic auth: root as asked, E2B\'s "user" is Hangar\'s default user', () => {
  assert.equal(userOf(`Basic ${Buffer.from('root:').toString('base64')}`), 'root');
  assert.equal(userOf(`Basic ${Buffer.from('user:').toString('base64')}`), undefined);
  assert.equal(userOf(undefined), undefined);
});

test('end events: exit status, signals, errors only for failures', () => {
  assert.deepEqual(endEvent({ code: 0, signal: null, timedOut: false }), { event: { case: 'end', value: { exitCode: 0, exited: true, status: 'exit status 0' } } });
  assert.deepEqual(endEvent({ code: 3, signal: null, timedOut: false }), { event: { case: 'end', value: { exitCode: 3, exited: true, status: 'exit status 3', error: 'exit status 3' } } });
  assert.deepEqual(endEvent({ code: null, signal: 'KILL', timedOut: false }), { event: { case: 'end', value: { exitCode: -1, exited: false, status: 'signal: kill', error: 'signal: kill' } } });
  assert.equal(keepaliveMs('50'), 50_000);
  assert.equal(keepaliveMs(null), 0);
  assert.equal(keepaliveMs('x'), 0);
});

test('entries and watch events as envd has them', () => {
  const e = entryOf('/home/user/a.txt', { type: 'file', size: 5, mode: 0o644, uid: 1000, gid: 1000, mtimeMs: 1_700_000_000_123 });
  assert.equal(e.name, 'a.txt');
  assert.equal(e.size, 5n);
  assert.equal(e.permissions, '-rw-r--r--');
  assert.equal(e.owner, 'user');
  assert.equal(permissionString('dir', 0o755), 'drwxr-xr-x');
  assert.deepEqual(eventOf('/tmp/w', { type: 'create', path: '/tmp/w/sub/x' }), { name: 'sub/x', type: 1 });
});

test('multipart: parts split at every size, in order, bytes intact', async () => {
  assert.equal(boundaryOf('multipart/form-data; boundary=----abc123'), '----abc123');
  assert.equal(boundaryOf('multipart/form-data; boundary="q r"'), 'q r');
  assert.equal(boundaryOf('application/json'), null);
  assert.deepEqual(parsePartHeaders('Content-Disposition: form-data; name="file"; filename="/tmp/a b.txt"\r\nContent-Type: application/octet-stream'),
    { name: 'file', filename: '/tmp/a b.txt', headers: { 'content-disposition': 'form-data; name="file"; filename="/tmp/a b.txt"', 'content-type': 'application/octet-stream' } });
  const one = randomBytes(300_000);
  const two = Buffer.from('second\r\n--not-the-boundary\r\n');
  const b = 'XyZ';
  const body = Buffer.concat([
    Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="file"; filename="/a"\r\n\r\n`), one,
    Buffer.from(`\r\n--${b}\r\nContent-Disposition: form-data; name="file"; filename="/b"\r\n\r\n`), two, Buffer.from(`\r\n--${b}--\r\n`),
  ]);
  for (const size of [1, 7, 64 * 1024, body.length]) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < body.length; i += size) chunks.push(body.subarray(i, i + size));
    const got: [string | null, Buffer][] = [];
    const n = await readMultipart(Readable.from(chunks), b, async (p) => {
      const parts: Buffer[] = [];
      for await (const c of p.body) { parts.push(c as Buffer); await new Promise((r) => setImmediate(r)); }
      got.push([p.filename, Buffer.concat(parts)]);
    });
    assert.equal(n, 2);
    assert.equal(got[0]![0], '/a');
    assert.ok(got[0]![1].equals(one), `part 1 with chunks of ${size}`);
    assert.ok(got[1]![1].equals(two), `part 2 with chunks of ${size}`);
  }
  await assert.rejects(readMultipart(Readable.from([Buffer.from(`--${b}\r\n\r\nno end`)]), b, async (p) => { p.body.resume(); }), /closing boundary/);
});

test('timeouts: a due sandbox is killed and forgotten, or paused with autoPause; paused ones wait', async () => {
  const s = new E2bState();
  s.set('vm-kill', fields('a', 1000));
  s.set('vm-pause', fields('b', 1000, true));
  s.set('vm-later', fields('c', 10_000));
  s.set('vm-paused', fields('d', 1000));
  const acted: string[] = [];
  const loop = startTimeoutLoop({
    state: s, paused: (id) => id === 'vm-paused',
    kill: async (id) => { acted.push(`kill ${id}`); }, pause: async (id) => { acted.push(`pause ${id}`); },
  }, 3_600_000);
  await loop.tick(5000);
  loop.stop();
  assert.deepEqual(acted.sort(), ['kill vm-kill', 'pause vm-pause']);
  assert.equal(s.get('vm-kill'), undefined);
  assert.ok(s.get('vm-pause') && s.get('vm-later') && s.get('vm-paused'));
});

test('@e2b/desktop command lines Hangar answers natively; anything else runs in the guest', () => {
  assert.deepEqual(desktopCommand('xdotool click 3'), { kind: 'action', body: { action: 'right_click' } });
  assert.deepEqual(desktopCommand('xdotool click --repeat 4 4'), { kind: 'action', body: { action: 'scroll', scroll_direction: 'up', scroll_amount: 4 } });
  assert.deepEqual(desktopCommand('xdotool mousemove --sync 5 6'), { kind: 'action', body: { action: 'mouse_move', coordinate: [5, 6] } });
  assert.deepEqual(desktopCommand(`xdotool type --delay 75 -- 'it'"'"'s; rm -rf /'`), { kind: 'action', body: { action: 'type', text: "it's; rm -rf /" } });
  assert.deepEqual(desktopCommand('xdotool key ctrl+Return'), { kind: 'action', body: { action: 'key', text: 'ctrl+Return' } });
  assert.deepEqual(desktopCommand('scrot --pointer /tmp/screenshot-ab12.png'), { kind: 'screenshot', path: '/tmp/screenshot-ab12.png' });
  assert.deepEqual(desktopCommand('Xvfb :0 -ac -screen 0 1024x768x24 -retro -dpi 96 -nolisten tcp -nolisten unix'), { kind: 'ok' });
  assert.deepEqual(desktopCommand('pgrep -x x11vnc'), { kind: 'ok', code: 1 }, 'the stream starts: Hangar\'s VNC server is never stopped');
  assert.equal(desktopCommand('scrot --pointer /tmp/x.png; reboot'), null);
  assert.equal(desktopCommand('xdotool key a; reboot'), null);
  assert.equal(desktopCommand('echo hi'), null);
  assert.equal(shellCommand('/bin/bash', ['-l', '-c', 'xrandr']), 'xrandr');
  assert.equal(shellCommand('/bin/sh', ['-c', 'xrandr']), null);
  assert.equal(unquote(`'a'"'"'b'`), "a'b");
});
