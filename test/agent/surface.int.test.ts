// The agent surface over REAL VMs (QEMU under TCG, the real hangar-agent in a test copy of the image, a real
// controller with its HTTP server): output of a command printing once a second arrives line by line; exit codes,
// signals, stdin, env and user are right; a background process outlives its request and is killed on demand; a 1 GiB
// file round-trips with equal sha256 while the controller's RSS grows by under 64 MiB; a PTY in real Chromium shows
// the output of a typed echo; a file is copied from one VM to another. Two VMs booted once, shared by every test.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { WebSocket } from 'ws';
import { SseParser } from '../../src/cli/sse.js';
import { imageSkipReason } from '../support/controller.js';
import { makeAgentImage, type AgentImage } from '../support/agent-image.js';
import { startLiveController, type LiveController } from '../support/live-controller.js';
import { launchBrowser, skipUnlessChromium, waitState } from '../support/viewer.js';

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, QEMU)' : (await imageSkipReason()) ?? false;

describe('the agent surface over real VMs', { skip }, () => {
  let img: AgentImage;
  let live: LiveController;
  const ids: string[] = [];
  const H = (): Record<string, string> => ({ authorization: `Bearer ${live.c.token}` });
  const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
    const r = await fetch(live.c.url + path, { method, headers: { ...H(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const t = await r.text();
    return { status: r.status, json: t ? JSON.parse(t) : {} };
  };
  const exec = (vm: string, body: object) => api('POST', `/v1/vms/${vm}/exec`, body);

  before(async () => {
    img = await makeAgentImage('desktop');
    process.env.HANGAR_IMAGES_DIR = img.imagesDir;
    live = await startLiveController({ net: { cidr: '10.231.0.0/29' } });
    for (const name of ['sa', 'sb']) {
      const r = await api('POST', '/v1/vms?wait=true&timeoutMs=300000', { name, profile: 'desktop' });
      assert.equal(r.status, 201, JSON.stringify(r.json));
      ids.push(r.json.id as string);
    }
    for (const id of ids) {
      const end = Date.now() + 120_000;
      for (;;) {
        const r = await exec(id, { argv: ['true'] });
        if (r.status === 200) break;
        assert.ok(Date.now() < end, `the agent of ${id} answers: ${JSON.stringify(r.json)}`);
        await new Promise((res) => setTimeout(res, 1000));
      }
    }
  });
  after(async () => {
    await live?.destroy();
    img?.remove();
    delete process.env.HANGAR_IMAGES_DIR;
  });

  test('a command printing once a second arrives line by line, not at exit', async () => {
    const res = await fetch(`${live.c.url}/v1/vms/${ids[0]}/exec?stream=sse`, { method: 'POST', headers: { ...H(), 'content-type': 'application/json' }, body: JSON.stringify({ cmd: 'for i in 1 2 3 4; do echo line$i; sleep 1; done' }) });
    const p = new SseParser();
    const at: { data: string; t: number }[] = [];
    for await (const c of res.body!) for (const e of p.push(new TextDecoder().decode(c as Uint8Array))) if (e.event === 'stdout') at.push({ data: JSON.parse(e.data).data, t: performance.now() });
    assert.equal(at.map((x) => x.data).join(''), 'line1\nline2\nline3\nline4\n');
    assert.ok(at.length >= 4, `one event per line: ${at.length}`);
    for (let i = 1; i < 4; i++) assert.ok(at[i]!.t - at[i - 1]!.t > 600, `line ${i + 1} came about a second after line ${i}`);
  });

  test('exit codes, signals, env and user', async () => {
    assert.equal((await exec(ids[0]!, { cmd: 'exit 3' })).json.exitCode, 3);
    const sig = (await exec(ids[0]!, { cmd: 'kill -TERM $$' })).json;
    assert.deepEqual([sig.exitCode, sig.signal], [null, 'TERM']);
    assert.equal((await exec(ids[0]!, { cmd: 'printf %s "$GREETING"', env: { GREETING: 'hé llo' } })).json.stdout, 'hé llo');
    assert.equal(((await exec(ids[0]!, { argv: ['id', '-un'] })).json.stdout as string).trim(), 'hangar', 'the desktop user by default');
    assert.equal(((await exec(ids[0]!, { argv: ['id', '-un'], user: 'root' })).json.stdout as string).trim(), 'root');
    assert.equal(((await exec(ids[0]!, { argv: ['pwd'], cwd: '/tmp' })).json.stdout as string).trim(), '/tmp');
  });

  test('stdin through the exec WebSocket', async () => {
    const ws = new WebSocket(`${live.c.url.replace('http', 'ws')}/v1/vms/${ids[0]}/exec/ws`, { headers: H() });
    const out: Buffer[] = [];
    const done: { exit?: Record<string, unknown> } = {};
    ws.on('message', (d: Buffer, bin: boolean) => {
      if (bin) { out.push(d.subarray(1)); return; }
      const m = JSON.parse(d.toString());
      if (m.type === 'started') { ws.send(Buffer.from('from stdin\n')); ws.send(JSON.stringify({ type: 'eof' })); }
      if (m.type === 'exit') done.exit = m;
    });
    ws.once('open', () => ws.send(JSON.stringify({ type: 'start', argv: ['sh', '-c', 'cat; exit 5'] })));
    await new Promise((r) => ws.once('close', r));
    assert.equal(Buffer.concat(out).toString(), 'from stdin\n');
    assert.equal(done.exit?.code, 5);
  });

  test('a background process outlives its request and is killed on demand', async () => {
    const r = await exec(ids[0]!, { cmd: 'exec sleep 600', background: true, tag: 'long' });
    assert.equal(r.status, 202);
    await new Promise((res) => setTimeout(res, 2000));
    const procs = (await api('GET', `/v1/vms/${ids[0]}/procs`)).json.procs as { proc: string; running: boolean }[];
    assert.equal(procs.find((p) => p.proc === r.json.proc)?.running, true);
    assert.equal((await api('DELETE', `/v1/vms/${ids[0]}/procs/${r.json.proc}`)).status, 204);
    assert.equal((await api('GET', `/v1/vms/${ids[0]}/procs/${r.json.proc}/wait`)).json.signal, 'KILL');
  });

  test('a 1 GiB file round-trips with equal sha256; the controller grows by under 64 MiB', async () => {
    const block = randomBytes(1024 * 1024);
    const sent = createHash('sha256');
    let n = 0;
    const source = new Readable({ read() { if (n++ < 1024) { sent.update(block); this.push(block); } else this.push(null); } });
    global.gc?.();
    const base = process.memoryUsage().rss;
    let peak = base;
    const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 100);
    try {
      // node:http, piped (fetch's streamed request bodies are read ahead without backpressure in Node 20).
      const put = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(`${live.c.url}/v1/vms/${ids[0]}/files?path=/home/hangar/big.bin`, { method: 'PUT', headers: { ...H(), 'content-type': 'application/octet-stream' } }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => { body += c; });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        source.pipe(req);
      });
      assert.equal(put.status, 200, put.body);
      assert.equal((JSON.parse(put.body) as { size: number }).size, 1024 ** 3);
      // The download with node:http too: this process is both the client and the controller, and fetch's web
      // stream body holds more of its own than the route does.
      const got = createHash('sha256');
      const length = await new Promise<string | undefined>((resolve, reject) => {
        const req = request(`${live.c.url}/v1/vms/${ids[0]}/files?path=/home/hangar/big.bin`, { headers: H() }, (res) => {
          res.on('data', (c: Buffer) => got.update(c));
          res.on('end', () => resolve(res.headers['content-length']));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(length, String(1024 ** 3));
      assert.equal(got.digest('hex'), sent.digest('hex'));
    } finally {
      clearInterval(sampler);
      await exec(ids[0]!, { argv: ['rm', '-f', '/home/hangar/big.bin'] });
    }
    const grewMiB = (peak - base) / 2 ** 20;
    console.log(`# RSS grew by ${grewMiB.toFixed(1)} MiB during the 1 GiB round trip`);
    assert.ok(grewMiB < 64, `RSS grew by ${grewMiB.toFixed(1)} MiB`);
  });

  test('copy a file from one VM to another in one call', async () => {
    const data = randomBytes(200_000);
    await fetch(`${live.c.url}/v1/vms/${ids[0]}/files?path=/home/hangar/creds.json&mode=0600`, { method: 'PUT', headers: { ...H(), 'content-type': 'application/octet-stream' }, body: data });
    const r = await api('POST', `/v1/vms/${ids[0]}/files/copy`, { toVm: ids[1], from: '/home/hangar/creds.json' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const back = Buffer.from(await (await fetch(`${live.c.url}/v1/vms/${ids[1]}/files?path=/home/hangar/creds.json`, { headers: H() })).arrayBuffer());
    assert.ok(back.equals(data));
    assert.equal(((await api('GET', `/v1/vms/${ids[1]}/files/stat?path=/home/hangar/creds.json`)).json.mode as number) & 0o777, 0o600);
  });

  test('a PTY in real Chromium shows the output of a typed echo', { skip: skipUnlessChromium() }, async () => {
    const t = (await api('POST', `/v1/vms/${ids[0]}/terminal`, {})).json;
    const b = await launchBrowser();
    try {
      const page = await b.context.newPage();
      const frames: string[] = [];
      page.on('websocket', (w) => {
        frames.push(`open ${w.url().replace(/token=[^&]+/, 'token=…')}`);
        w.on('framereceived', (f) => frames.push(`recv ${typeof f.payload} ${JSON.stringify(String(f.payload).slice(0, 80))}`));
        w.on('close', () => frames.push('closed'));
      });
      await page.goto(live.c.url + (t.url as string));
      await waitState(page, 'connected', 30_000);
      await page.waitForTimeout(1500); // the login shell prints its prompt
      await page.keyboard.type('echo hi-$((6*7))\n');
      // In the page: the terminal's buffer as text (window.hangarTerm is the page's test hook).
      const text = (): Promise<string> => page.evaluate<string>(`(() => { const b = window.hangarTerm.buffer.active; const l = []; for (let i = 0; i < b.length; i++) l.push(b.getLine(i)?.translateToString(true) ?? ''); return l.join('\\n'); })()`);
      const end = Date.now() + 30_000;
      while (!/^hi-42$/m.test(await text())) {
        assert.ok(Date.now() < end, `the terminal shows hi-42: ${await text()}\nconsole: ${b.console.join('\n')}\nstatus: ${await page.evaluate<string>('document.getElementById("status").textContent + " " + document.getElementById("message").textContent')}\nframes: ${frames.join('\n')}`);
        await page.waitForTimeout(300);
      }
    } finally {
      await b.close();
    }
  });
});
