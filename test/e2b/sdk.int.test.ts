// The REAL e2b SDK (node_modules/e2b, unmodified) against a real controller and ONE real VM (QEMU, TCG here): only
// E2B_API_URL / E2B_SANDBOX_URL / E2B_API_KEY point it at Hangar. Sandbox.create of the desktop profile, commands
// (run, streamed output, CommandExitError, background + kill, stdin, list, connect), a PTY, files (text, a 10 MiB
// binary round trip, list, exists, info, makeDir, rename, remove, watchDir), @e2b/desktop's input, cursor, screen
// size and screenshot on the same sandbox (computer use), open() through xdg-open, the stream URL in Chromium
// (src/e2b/stream.ts), pause → resume with a process and a
// tmpfs file kept, a wrong API key refused, another tenant not seeing the sandbox, kill. One boot for the file.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { chromium } from 'playwright-core';
import { AuthenticationError, CommandExitError, NotFoundError, Sandbox } from 'e2b';
import { Sandbox as Desktop } from '@e2b/desktop';
import { resolvePaths } from '../../src/config.js';
import { newApiKey } from '../../src/tenancy/keys.js';
import { skipUnlessRoot } from '../support/env.js';
import { imageSkipReason } from '../support/controller.js';
import { startLiveController, type LiveController } from '../support/live-controller.js';
import { CHROMIUM, CHROMIUM_ARGS, notBlank, openViewer, skipUnlessChromium, waitNotBlank, waitState } from '../support/viewer.js';
import { run } from '../../src/util/exec.js';

process.env.HANGAR_IMAGES_DIR ??= resolvePaths().imagesDir;
const skip = skipUnlessRoot() || (await imageSkipReason()) || false;
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('the e2b SDK against Hangar (one real VM)', { skip, concurrency: false }, () => {
  let live: LiveController;
  let cacheDir = '';
  let sbx: Sandbox;
  let opts: { apiKey: string; apiUrl: string; sandboxUrl: string; requestTimeoutMs: number };
  let otherKey = '';
  const key = (tenant: string): string => {
    const t = live.c.store.tenancy;
    if (!t.getTenant(tenant)) t.createTenant(tenant);
    const k = newApiKey();
    t.createKey({ id: k.id, tenant, scope: 'write', hash: k.hash, expiresAt: null });
    return k.secret;
  };

  before(async () => {
    cacheDir = mkdtempSync(join(tmpdir(), 'hangar-e2bcache-'));
    process.env.HANGAR_CACHE_DIR = cacheDir;
    // Headroom over the guest's memory for its QEMU: under TCG, a guest whose RAM is all touched plus QEMU's
    // translation cache and the migration that pause runs exceed the default 256 MiB (its cgroup OOM-kills QEMU).
    live = await startLiveController({ net: { cidr: '10.227.0.0/29' }, config: { hibernateAfterS: 0, vmm: { resources: { overheadMiB: 1024 } } } });
    opts = { apiKey: key('e2b-a'), apiUrl: `${live.c.url}/e2b`, sandboxUrl: `${live.c.url}/e2b/sandbox`, requestTimeoutMs: 240_000 };
    otherKey = key('e2b-b');
    const t0 = performance.now();
    sbx = await Sandbox.create('desktop', { ...opts, timeoutMs: 900_000, metadata: { suite: 'e2b-int' }, envs: { HANGAR_E2B: 'on' } });
    console.log(`# Sandbox.create (boot under ${process.env.HANGAR_ACCEL ?? 'the host accel'}): ${(performance.now() - t0).toFixed(0)} ms`);
  });
  after(async () => {
    try { await live?.destroy(); } finally { if (cacheDir) rmSync(cacheDir, { recursive: true, force: true }); }
  });

  test('commands: run with streamed output and sandbox envs; CommandExitError carries the exit code and stderr', async () => {
    const t0 = performance.now();
    const first = await sbx.commands.run('true');
    console.log(`# first commands.run: ${(performance.now() - t0).toFixed(0)} ms`);
    assert.equal(first.exitCode, 0);
    const seen: string[] = [];
    const r = await sbx.commands.run('for i in 1 2 3; do echo line$i; sleep 0.3; done; echo "$HANGAR_E2B"', { onStdout: (d) => { seen.push(d); } });
    assert.equal(r.stdout, 'line1\nline2\nline3\non\n');
    assert.ok(seen.length >= 3, `streamed in ${seen.length} callbacks`);
    await assert.rejects(sbx.commands.run('echo oops >&2; exit 7'), (e: unknown) => e instanceof CommandExitError && e.exitCode === 7 && e.stderr === 'oops\n');
  });

  test('commands: background, list, kill; stdin; connect to a running command', async () => {
    const bg = await sbx.commands.run('sleep 600', { background: true });
    assert.ok((await sbx.commands.list()).some((p) => p.pid === bg.pid));
    assert.equal(await sbx.commands.kill(bg.pid), true);
    await assert.rejects(bg.wait(), CommandExitError);
    assert.ok(!(await sbx.commands.list()).some((p) => p.pid === bg.pid));
    const cat = await sbx.commands.run('cat', { background: true, stdin: true });
    await sbx.commands.sendStdin(cat.pid, 'to stdin');
    await sbx.commands.closeStdin(cat.pid);
    assert.equal((await cat.wait()).stdout, 'to stdin');
    const ticker = await sbx.commands.run('for i in $(seq 1 40); do echo tick; sleep 0.25; done', { background: true });
    await ticker.disconnect();
    const again = await sbx.commands.connect(ticker.pid);
    assert.equal((await again.wait()).exitCode, 0);
    assert.match(again.stdout, /tick/);
  });

  test('pty: a terminal that takes input and resizes', async () => {
    let out = '';
    const term = await sbx.pty.create({ cols: 100, rows: 30, onData: (d) => { out += Buffer.from(d).toString(); } });
    await sbx.pty.resize(term.pid, { cols: 120, rows: 40 });
    await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size; echo pty-$((6*7))\nexit\n'));
    await term.wait().catch(() => undefined);
    assert.match(out, /40 120/);
    assert.match(out, /pty-42/);
  });

  test('files: text, a 10 MiB binary round trip, list, exists, info, makeDir, rename, remove, watchDir', async () => {
    await sbx.files.write('/tmp/e2b/hello.txt', 'hello from the SDK');
    assert.equal(await sbx.files.read('/tmp/e2b/hello.txt'), 'hello from the SDK');
    assert.equal((await sbx.commands.run('cat /tmp/e2b/hello.txt')).stdout, 'hello from the SDK');
    const blob = randomBytes(10 * 1024 * 1024);
    const w0 = performance.now();
    await sbx.files.write('/tmp/e2b/blob.bin', blob.buffer.slice(blob.byteOffset, blob.byteOffset + blob.length));
    const r0 = performance.now();
    const back = await sbx.files.read('/tmp/e2b/blob.bin', { format: 'bytes' });
    console.log(`# 10 MiB through the SDK: write ${(r0 - w0).toFixed(0)} ms, read ${(performance.now() - r0).toFixed(0)} ms`);
    assert.equal(back.length, blob.length);
    assert.equal(sha(back), sha(blob));
    assert.equal((await sbx.commands.run('sha256sum /tmp/e2b/blob.bin')).stdout.split(' ')[0], sha(blob));
    assert.deepEqual((await sbx.files.list('/tmp/e2b')).map((e) => e.name).sort(), ['blob.bin', 'hello.txt']);
    assert.equal(await sbx.files.exists('/tmp/e2b/nope'), false);
    assert.equal((await sbx.files.getInfo('/tmp/e2b/blob.bin')).size, blob.length);
    assert.equal(await sbx.files.makeDir('/tmp/e2b/sub/deeper'), true);
    await sbx.files.rename('/tmp/e2b/hello.txt', '/tmp/e2b/sub/hello.txt');
    assert.equal(await sbx.files.exists('/tmp/e2b/sub/hello.txt'), true);
    const events: string[] = [];
    const w = await sbx.files.watchDir('/tmp/e2b/sub', (e) => { events.push(`${e.type} ${e.name}`); });
    await sbx.commands.run('echo x > /tmp/e2b/sub/new.txt');
    for (let i = 0; i < 40 && !events.some((e) => e.endsWith('new.txt')); i++) await new Promise((r) => setTimeout(r, 100));
    await w.stop();
    assert.ok(events.some((e) => e.endsWith('new.txt')), events.join(', '));
    await sbx.files.remove('/tmp/e2b');
    assert.equal(await sbx.files.exists('/tmp/e2b'), false);
  });

  test('list and info by metadata; another tenant does not see the sandbox; a wrong API key is refused', async () => {
    const mine = await Sandbox.list({ ...opts, query: { metadata: { suite: 'e2b-int' } } }).nextItems();
    assert.deepEqual(mine.map((s) => s.sandboxId), [sbx.sandboxId]);
    assert.equal((await sbx.getInfo()).state, 'running');
    assert.deepEqual(await Sandbox.list({ ...opts, apiKey: otherKey }).nextItems(), []);
    await assert.rejects(Sandbox.getInfo(sbx.sandboxId, { ...opts, apiKey: otherKey }), NotFoundError);
    await assert.rejects(Sandbox.connect(sbx.sandboxId, { ...opts, apiKey: otherKey }), NotFoundError);
    await assert.rejects(Sandbox.list({ ...opts, apiKey: 'hgk_not_a_key' }).nextItems(), AuthenticationError);
  });

  test('@e2b/desktop open(): xdg-open in the guest hands a URL to the default browser', async () => {
    // The desktop image has no browser (the browser image's chromium is its x-www-browser): a stand-in records the call.
    const rec = 'printf "%s\\n" "$@" > /tmp/e2b-opened';
    await sbx.commands.run(`printf '%s\\n' '#!/bin/sh' '${rec}' > /usr/local/bin/www-browser && chmod 755 /usr/local/bin/www-browser && ln -sf www-browser /usr/local/bin/x-www-browser && rm -f /tmp/e2b-opened`, { user: 'root' });
    assert.equal((await sbx.commands.run('command -v xdg-open')).stdout.trim(), '/usr/bin/xdg-open', 'the image has xdg-utils');
    const d = await Desktop.connect(sbx.sandboxId, opts);
    await d.open('http://example.test/opened-by-the-sdk');
    let opened = '';
    for (const end = Date.now() + 30_000; opened === '' && Date.now() < end;) {
      opened = (await sbx.commands.run('cat /tmp/e2b-opened 2>/dev/null || true')).stdout;
      if (opened === '') await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(opened, 'http://example.test/opened-by-the-sdk\n');
  });

  test('@e2b/desktop stream: the SDK\'s own URL (https://6080-<id>.<domain>/vnc.html, through a TLS proxy) opens Hangar\'s viewer in Chromium, showing the desktop', { skip: skipUnlessChromium() }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-e2bstream-'));
    const [certFile, keyFile] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    // A TLS terminator in front of the controller, as a deployment's wildcard-certificate proxy: bytes relayed, Host kept.
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=e2b.localhost', '-keyout', keyFile, '-out', certFile], { timeoutMs: 30_000 });
    const upstream = Number(new URL(live.c.url).port);
    const proxy = createTlsServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (s) => {
      const up = connect(upstream, '127.0.0.1');
      s.pipe(up).pipe(s);
      up.on('error', () => s.destroy());
      s.on('error', () => up.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const profile = join(dir, 'profile');
    const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, ignoreHTTPSErrors: true, viewport: { width: 1100, height: 860 } });
    const b = { context, console: [] as string[], close: async () => { await context.close(); } };
    try {
      const d = await Desktop.connect(sbx.sandboxId, { ...opts, domain: `e2b.localhost:${(proxy.address() as AddressInfo).port}` });
      await d.stream.start({ requireAuth: true });
      const url = d.stream.getUrl({ authKey: d.stream.getAuthKey() });
      assert.match(url, new RegExp(`^https://6080-${sbx.sandboxId}\\.e2b\\.localhost:\\d+/vnc\\.html\\?`));
      const refused = await context.newPage();
      assert.equal((await refused.goto(d.stream.getUrl()))?.status(), 401, 'without the key: no viewer');
      const page = await openViewer(b, url);
      assert.match(page.url(), new RegExp(`^http://[^/]+/view/${sbx.sandboxId}\\?token=`), 'redirected to a fresh Hangar viewer');
      await waitState(page, 'connected', 60_000);
      const stats = await waitNotBlank(page, 60_000);
      assert.ok(notBlank(stats), `${JSON.stringify(stats)}; console: ${b.console.join(' | ')}`);
    } finally {
      await b.close().catch(() => undefined);
      await new Promise((r) => proxy.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('@e2b/desktop on the same sandbox: mouse, keyboard, cursor, screen size and screenshots through computer use', async () => {
    const d = await Desktop.connect(sbx.sandboxId, opts);
    const size = await d.getScreenSize();
    assert.ok(size.width >= 640 && size.height >= 480, JSON.stringify(size));
    await d.moveMouse(120, 90);
    assert.deepEqual(await d.getCursorPosition(), { x: 120, y: 90 });
    await d.leftClick();
    await d.doubleClick(200, 150);
    await d.rightClick();
    await d.middleClick();
    await d.scroll('down', 2);
    await d.drag([50, 60], [70, 80]);
    assert.deepEqual(await d.getCursorPosition(), { x: 70, y: 80 });
    await d.write('hangar e2b');
    await d.press('enter');
    await d.press(['ctrl', 'a']);
    const shot = await d.screenshot();
    assert.ok(Buffer.from(shot.subarray(0, 8)).equals(Buffer.from('89504e470d0a1a0a', 'hex')), 'a PNG');
    assert.ok(shot.length > 1000, `${shot.length} bytes`);
  });

  test('pause → resume keeps the guest state (a running process, a tmpfs file)', async () => {
    const keeper = await sbx.commands.run('sleep 3000', { background: true });
    await sbx.commands.run('echo kept > /dev/shm/e2b-state');
    const p0 = performance.now();
    assert.equal(await sbx.pause(), true);
    assert.equal((await Sandbox.getInfo(sbx.sandboxId, opts)).state, 'paused');
    assert.equal(await Sandbox.pause(sbx.sandboxId, opts), false, 'already paused');
    const r0 = performance.now();
    const resumed = await Sandbox.connect(sbx.sandboxId, opts);
    console.log(`# pause ${(r0 - p0).toFixed(0)} ms, resume ${(performance.now() - r0).toFixed(0)} ms`);
    assert.equal((await resumed.getInfo()).state, 'running');
    assert.equal((await resumed.commands.run('cat /dev/shm/e2b-state')).stdout, 'kept\n');
    assert.equal((await resumed.commands.run(`kill -0 ${keeper.pid} && echo alive`)).stdout, 'alive\n');
    sbx = resumed;
  });

  test('kill: the sandbox is gone', async () => {
    assert.equal(await sbx.kill().then(() => true), true);
    await assert.rejects(Sandbox.getInfo(sbx.sandboxId, opts), NotFoundError);
    assert.equal(await Sandbox.kill(sbx.sandboxId, opts), false);
  });
});
