// The guest mount script's Chromium handling (src/volume/plan.ts GUEST_SCRIPT), run for real by dash in a PID and
// mount namespace of its own (root), with a FAKE Chromium (a script named chromium: its comm is "chromium"), so no
// other Chromium on the host is ever seen or signalled. The disk part needs a guest's /sys/block, so the script's
// helpers run on their own: everything before its final `case` (with the action `release`, which waits for no disk).
// The second test's fake has a DevTools port (a small Node server in the fake): the script closes it over CDP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CDP_CLOSE_SCRIPT, GUEST_SCRIPT } from '../../src/volume/plan.js';
import { run } from '../../src/util/exec.js';
import { skipUnlessRoot } from '../support/env.js';

const skip = skipUnlessRoot();
const helpers = GUEST_SCRIPT.slice(0, GUEST_SCRIPT.indexOf('case "$action" in'));

test('a Chromium whose profile is under the mount point is stopped gracefully and started again with its argv, user and environment; another is left alone', { skip, timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-gscript-'));
  try {
    chmodSync(dir, 0o755);
    const fake = join(dir, 'chromium');
    // Logs its start (argv, HOME, uid) and a graceful stop to a file anyone may append to.
    writeFileSync(fake, `#!/bin/sh\ntrap 'echo "term $$" >>${dir}/log; exit 0' TERM\necho "start $$ uid=$(id -u) HOME=$HOME $*" >>${dir}/log\nwhile :; do sleep 0.1; done\n`);
    chmodSync(fake, 0o755);
    writeFileSync(join(dir, 'log'), '');
    chmodSync(join(dir, 'log'), 0o666);
    const harness = [
      'mount -t tmpfs tmpfs /run && mkdir -p /run/hangar',
      `setpriv --reuid=65534 --regid=65534 --clear-groups env -i HOME=${dir}/home PATH=/usr/bin:/bin ${fake} --no-first-run about:blank &`,
      'while ! grep -q start "$LOG"; do sleep 0.05; done',
      `dash -c "$HELPERS"'\nfind_browser; echo "other=$browser"' hangar-volume hvol0 ${dir}/elsewhere rw release`,
      `dash -c "$HELPERS"'\nfind_browser; echo "found=$browser"; stop_browser; echo stopped; start_browser; echo restarted' hangar-volume hvol0 ${dir}/home/.config/chromium rw release`,
      'while [ "$(grep -c start "$LOG")" -lt 2 ]; do sleep 0.05; done',
    ].join('\n');
    const r = await run('unshare', ['--pid', '--fork', '--mount', '--mount-proc', 'bash', '--norc', '-c', harness], {
      timeoutMs: 50_000, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HELPERS: helpers, LOG: join(dir, 'log') },
    });
    const lines = readFileSync(join(dir, 'log'), 'utf8').trim().split('\n');
    assert.match(r.stdout, /^other=$/m, 'a profile elsewhere: not this mount\'s browser');
    assert.match(r.stdout, /^found=\d+$/m);
    assert.match(r.stdout, /stopped\nrestarted/);
    assert.equal(lines.length, 3, lines.join('\n'));
    const [first, term, second] = lines as [string, string, string];
    assert.match(term, /^term \d+$/, 'stopped with SIGTERM (Chromium writes its cookies and closes its profile)');
    const strip = (l: string): string => l.replace(/^start \d+ /, '');
    assert.equal(strip(second), strip(first), 'the same argv, user and HOME');
    assert.match(first, new RegExp(`^start \\d+ uid=65534 HOME=${dir}/home --no-first-run about:blank$`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a Chromium with a DevTools port is closed over CDP (Browser.close, which writes its cookies), not signalled; started again the same', { skip, timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-gscript-'));
  try {
    chmodSync(dir, 0o755);
    const fake = join(dir, 'chromium');
    // A fake Chromium: a DevTools endpoint on its --remote-debugging-port (/json/version, then one WebSocket whose
    // first text frame it logs, unmasked, before it exits), and a SIGTERM handler that logs "term".
    writeFileSync(fake, `#!${process.execPath}
const fs = require('node:fs'); const http = require('node:http');
const log = (l) => fs.appendFileSync(${JSON.stringify(join(dir, 'log'))}, l + '\\n');
const port = Number(process.argv.find((a) => a.startsWith('--remote-debugging-port=')).split('=')[1]);
process.on('SIGTERM', () => { log('term ' + process.pid); process.exit(0); });
const srv = http.createServer((req, res) => res.end(JSON.stringify({ Browser: 'Fake/1', webSocketDebuggerUrl: 'ws://127.0.0.1:' + port + '/devtools/browser/abc-123' }, null, 3)));
srv.on('upgrade', (req, sock) => {
  sock.write('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: x\\r\\n\\r\\n');
  let buf = Buffer.alloc(0);
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    if (buf.length < 6) return;
    const len = buf[1] & 0x7f; if (buf.length < 6 + len) return;
    const mask = buf.subarray(2, 6); const body = Buffer.from(buf.subarray(6, 6 + len).map((b, i) => b ^ mask[i % 4]));
    log('frame ' + process.pid + ' fin+op=' + buf[0] + ' masked=' + (buf[1] >> 7) + ' ' + req.url + ' ' + body.toString());
    sock.destroy(); process.exit(0);
  });
});
srv.listen(port, '127.0.0.1', () => log('start ' + process.pid + ' ' + process.argv.slice(2).join(' ')));
`);
    chmodSync(fake, 0o755);
    writeFileSync(join(dir, 'log'), '');
    chmodSync(join(dir, 'log'), 0o666);
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const harness = [
      'mount -t tmpfs tmpfs /run && mkdir -p /run/hangar',
      `setpriv --reuid=65534 --regid=65534 --clear-groups env -i HOME=${dir}/home PATH=/usr/bin:/bin ${fake} --remote-debugging-port=${port} about:blank &`,
      'while ! grep -q start "$LOG"; do sleep 0.05; done',
      `dash -c "$HELPERS"'\nstop_browser; echo stopped; start_browser; echo restarted' hangar-volume hvol0 ${dir}/home/.config/chromium rw release "$CDP"`,
      'while [ "$(grep -c start "$LOG")" -lt 2 ]; do sleep 0.05; done',
      'cat /run/hangar/chromium.log', // the PID namespace's processes go when its init (this bash) exits
    ].join('\n');
    const r = await run('unshare', ['--pid', '--fork', '--mount', '--mount-proc', 'bash', '--norc', '-c', harness], {
      timeoutMs: 50_000, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HELPERS: helpers, LOG: join(dir, 'log'), CDP: CDP_CLOSE_SCRIPT },
    });
    const lines = readFileSync(join(dir, 'log'), 'utf8').trim().split('\n');
    assert.match(r.stdout, /stopped\nrestarted/);
    assert.equal(lines.length, 3, lines.join('\n'));
    const [first, frame, second] = lines as [string, string, string];
    assert.match(frame, /^frame \d+ fin\+op=129 masked=1 \/devtools\/browser\/abc-123 \{"id":1,"method":"Browser.close"\}$/, 'one masked text frame: Browser.close, on the browser target');
    assert.ok(!lines.some((l) => l.startsWith('term')), 'no SIGTERM: closed over CDP');
    assert.match(r.stdout, /hangar-volume: chromium \d+ stopped \(cdp\) for release of /, 'the guest log says how');
    const strip = (l: string): string => l.replace(/^start \d+ /, '');
    assert.equal(strip(second), strip(first), 'the same argv');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
