// "Log in once" in real browser VMs (QEMU under TCG, the real controller, the browser image; run under the
// integration lock): a browser-profile volume at Chromium's user data dir. VM A gets it at create: Chromium runs on
// it (its open profile files are on the volume's device), and Playwright (through Hangar's CDP endpoint) logs in to
// a web service in the test's world namespace (test/volume/login-server.ts: a form that sets a persistent cookie).
// A is destroyed (its volumes are unmounted first: Chromium is closed over CDP, so it writes its cookies). A NEW VM B,
// booted without it, gets the volume by a live attach (what a claim from a warm pool does): Chromium is restarted on
// it, and opening the service shows the user logged in without a second login. Detaching it from B closes Chromium over
// CDP and starts it again on the image's directory. Two browser boots in all (the
// browser profile: its memory; with the desktop's 512 MiB Chromium's renderers cannot reserve their code range).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { run } from '../../src/util/exec.js';
import { skipUnlessRoot } from '../support/env.js';
import { imageSkipReason } from '../support/controller.js';
import { guestSh, liveApi, startLiveController, type LiveController } from '../support/live-controller.js';
import { createWorld, UPLINK, WORLD, type World } from '../support/world.js';

const skip = skipUnlessRoot() || (await imageSkipReason('browser')) || false;
const PROFILE = '/home/hangar/.config/chromium';
const SERVICE = `http://${WORLD.web}:8080/`;

describe('a browser-profile volume: log in once', { skip, concurrency: false }, () => {
  let live: LiveController;
  let world: World | undefined;
  let login: ChildProcess | undefined;
  let a = '';
  let b = '';
  const api = <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => liveApi<T>(live, method, path, body);
  const sh = (vm: string, cmd: string): Promise<string> => guestSh(live, vm, cmd);
  const stats = async (): Promise<{ logins: number; authed: number; forms: number }> => {
    const r = await run('ip', ['netns', 'exec', world!.netns, 'curl', '-sS', '--noproxy', '*', '-m', '5', `${SERVICE}stats`], { timeoutMs: 10_000 });
    return JSON.parse(r.stdout) as { logins: number; authed: number; forms: number };
  };
  /**
   * The guest's Chromium browser process and how many of its open files under the profile path are on the
   * volume's device (`on`) or on another one (`off`: the image's directory the mount hides).
   */
  const browserFiles = (vm: string): Promise<string> => sh(vm, `
    pid=""
    for p in /proc/[0-9]*; do
      [ "$(cat $p/comm 2>/dev/null)" = chromium ] || continue
      tr '\\0' ' ' <$p/cmdline | grep -q -- --type= && continue
      pid=\${p#/proc/}; break
    done
    dev=$(stat -c %d ${PROFILE}); on=0; off=0
    [ -n "$pid" ] && for f in /proc/$pid/fd/*; do
      case "$(readlink $f)" in ${PROFILE}/*) if [ "$(stat -L -c %d $f)" = "$dev" ]; then on=$((on+1)); else off=$((off+1)); fi ;; esac
    done
    echo "pid=$pid on=$on off=$off"`);
  /** Waits (with a deadline) until Chromium holds profile files open on the volume; its pid. */
  const onVolume = async (vm: string): Promise<string> => {
    const deadline = Date.now() + 180_000;
    for (;;) {
      const s = await browserFiles(vm);
      const m = /^pid=(\d+) on=(\d+) off=(\d+)$/.exec(s);
      if (m && Number(m[2]) > 0) {
        assert.equal(m[3], '0', `Chromium holds no profile file of the image's directory: ${s}`);
        return m[1]!;
      }
      if (Date.now() > deadline) throw new Error(`Chromium did not open its profile on the volume: ${s}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  };
  /** What the guest says about its Chromium (printed when a step fails). */
  const diag = async (vm: string): Promise<void> => {
    const out = await sh(vm, `for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = chromium ] && { echo "$p: $(tr '\\0' '|' <$p/cmdline | cut -c1-600)"; }; done; echo ---; tail -n 40 /run/hangar/chromium.log; echo ---; dmesg | tail -n 15; free -m`).catch((e: unknown) => String(e));
    console.log(out.split('\n').map((l) => `# ${l}`).join('\n'));
  };
  /** Playwright through Hangar's CDP endpoint, once the guest's Chromium answers. */
  const cdp = async (vm: string) => {
    const deadline = Date.now() + 240_000;
    while ((await fetch(`${live.c.url}/v1/vms/${vm}/cdp/json/version`, { headers: { authorization: `Bearer ${live.c.token}` } })).status !== 200) {
      if (Date.now() > deadline) throw new Error("the guest's Chromium did not answer /json/version");
      await new Promise((r) => setTimeout(r, 1000));
    }
    return chromium.connectOverCDP(`${live.c.url}/v1/vms/${vm}/cdp`, { headers: { authorization: `Bearer ${live.c.token}` }, timeout: 120_000 });
  };

  before(async () => {
    live = await startLiveController({
      net: { cidr: '10.227.0.0/29', overrides: { egress: { uplink: UPLINK, resolvers: [WORLD.dns] } } },
      config: { hibernateAfterS: 0 },
    });
    world = await createWorld(live.net.cfg);
    const script = fileURLToPath(new URL('./login-server.js', import.meta.url));
    login = spawn('ip', ['netns', 'exec', world.netns, process.execPath, script, WORLD.web, '8080'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the login server did not start')), 10_000);
      login!.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('login ready')) { clearTimeout(timer); resolve(); } });
      login!.once('exit', (c) => { clearTimeout(timer); reject(new Error(`the login server exited (${c})`)); });
    });
  });
  after(async () => {
    try {
      login?.kill('SIGKILL');
      await world?.destroy();
    } finally {
      await live?.destroy();
    }
  });

  test('VM A, the volume given at create: Chromium runs on it from the start; the user logs in', { timeout: 600_000 }, async () => {
    const v = await api<{ id: string }>('POST', '/v1/volumes', { name: 'profile', sizeMiB: 256 });
    assert.equal(v.status, 201, JSON.stringify(v.body));
    const r = await api<{ id: string }>('POST', '/v1/vms?wait=true', {
      profile: 'browser', name: 'prof-a', volumes: [{ name: 'profile', path: PROFILE }], network: { egress: { mode: 'internet' } },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    a = r.body.id;
    assert.match(await sh(a, `grep " ${PROFILE} " /proc/mounts`), /^\/dev\/vd[bc] \S+ ext4 rw/);
    await onVolume(a);
    const browser = await cdp(a);
    try {
      const page = await (browser.contexts()[0] ?? await browser.newContext()).newPage();
      page.setDefaultTimeout(120_000);
      await page.goto(SERVICE);
      assert.equal(await page.title(), 'login', 'not logged in yet');
      await page.fill('#user', 'alice');
      await page.fill('#pass', 'wonderland');
      await Promise.all([page.waitForURL(SERVICE), page.click('#go')]);
      assert.equal(await page.textContent('#who'), 'alice');
      await page.close();
    } catch (e) {
      await diag(a);
      throw e;
    } finally {
      await browser.close(); // the connection, not the guest's browser
    }
    assert.equal((await stats()).logins, 1);
  });

  // A is destroyed seconds after the login: a SIGTERM'd Chromium lost that cookie (its store is written every 30 s),
  // so this fails unless the release closes Chromium over CDP (Browser.close writes the store first).
  test('A destroyed; a NEW VM B gets the volume live (no reboot): Chromium restarts on it, and the user is logged in', { timeout: 600_000 }, async () => {
    assert.ok(a, 'VM A ran');
    assert.equal((await api('DELETE', `/v1/vms/${a}`)).status, 204);
    assert.deepEqual((await api<{ attachments: unknown[] }>('GET', '/v1/volumes/profile')).body.attachments, [], 'the volume is free');
    const r = await api<{ id: string }>('POST', '/v1/vms?wait=true', { profile: 'browser', name: 'prof-b', network: { egress: { mode: 'internet' } } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    b = r.body.id;
    const bootId = await sh(b, 'cat /proc/sys/kernel/random/boot_id');
    // Chromium was started by the guest init on the image's profile: wait until it has it open, then attach.
    const deadline = Date.now() + 180_000;
    let before = '';
    while (!/^pid=\d+ on=[1-9]\d* off=0$/.test(before = await browserFiles(b))) { // on: the image's device, before the mount
      if (Date.now() > deadline) throw new Error(`Chromium did not start on the image's profile: ${before}`);
      await new Promise((res) => setTimeout(res, 1000));
    }
    const t0 = performance.now();
    const at = await api<{ slot: number }>('POST', `/v1/vms/${b}/volumes`, { name: 'profile', path: PROFILE });
    console.log(`# live attach of a profile volume (swap + stop Chromium + mount + start Chromium, until its DevTools port listens): ${(performance.now() - t0).toFixed(0)} ms`);
    assert.equal(at.status, 201, JSON.stringify(at.body));
    const pid = await onVolume(b);
    assert.notEqual(`pid=${pid}`, before.split(' ')[0], 'a new Chromium process');
    assert.equal(await sh(b, 'cat /proc/sys/kernel/random/boot_id'), bootId, 'no reboot');
    const was = await stats();
    const browser = await cdp(b);
    try {
      const page = await (browser.contexts()[0] ?? await browser.newContext()).newPage();
      page.setDefaultTimeout(120_000);
      await page.goto(SERVICE);
      assert.equal(await page.title(), 'welcome', 'logged in without logging in again');
      assert.equal(await page.textContent('#who'), 'alice');
      await page.close();
    } catch (e) {
      await diag(b);
      throw e;
    } finally {
      await browser.close();
    }
    const now = await stats();
    assert.equal(now.logins, 1, 'still the one login');
    assert.equal(now.authed, was.authed + 1, "the service saw B's browser with A's session cookie");
  });

  test('detach from B: Chromium is closed over CDP (not signalled), the volume unmounted, Chromium started again on the image\'s directory', { timeout: 300_000 }, async () => {
    assert.ok(b, 'VM B ran');
    const t0 = performance.now();
    const r = await api('DELETE', `/v1/vms/${b}/volumes/profile`);
    console.log(`# detach of a profile volume (close Chromium + unmount + start it again): ${(performance.now() - t0).toFixed(0)} ms`);
    assert.equal(r.status, 204, JSON.stringify(r.body));
    assert.equal(await sh(b, `grep -c " ${PROFILE} " /proc/mounts || true`), '0', 'unmounted');
    assert.match(await sh(b, 'cat /run/hangar/chromium.log'), new RegExp(`hangar-volume: chromium \\d+ stopped \\(cdp\\) for umount of ${PROFILE}`), 'closed over CDP');
    const deadline = Date.now() + 180_000;
    let s = '';
    while (!/^pid=\d+ on=[1-9]\d* off=0$/.test(s = await browserFiles(b))) { // on: the image's device again
      if (Date.now() > deadline) throw new Error(`Chromium did not start again on the image's profile: ${s}`);
      await new Promise((res) => setTimeout(res, 1000));
    }
  });
});
