// The host side (session + client) against the REAL hangar-agent compiled on this host, over --listen-unix:
// exec streaming, exit codes, signals, stdin, env, cwd, user, background/ps/attach/kill, pty with resize, file
// ops, a 64 MiB round trip with bounded host memory, watch, tcp forward, flow control.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { isHangarError } from '../../src/errors.js';
import type { AgentClient } from '../../src/agent/client.js';
import { LIMITS } from '../../src/agent/codec.js';
import { agentBinary, collect, startLocalAgent, type LocalAgent } from '../support/agent-binary.js';

const bin = agentBinary();
const skip = 'skip' in bin ? bin.skip : false;
let agent: LocalAgent;
let c: AgentClient;

before(async () => {
  if ('skip' in bin) return;
  agent = await startLocalAgent(bin.path);
  c = await agent.open();
});
after(async () => { await agent?.stop(); });

const text = async (h: { stdout: AsyncIterable<unknown> }): Promise<string> => (await collect(h.stdout)).toString();

test('HELLO_OK carries our fresh session id and the hostname', { skip }, async () => {
  assert.match(c.session, /^[0-9a-f]{32}$/);
  const c2 = await agent.open();
  assert.notEqual(c2.session, c.session);
  assert.ok(c.hostname.length > 0);
  assert.ok((await c.ping()) >= 0);
});

test('exec: output arrives line by line while the command runs, exit code passed through', { skip }, async () => {
  const h = await c.exec({ cmd: 'for i in 1 2 3; do echo line$i; sleep 0.2; done; exit 7' });
  const t0 = Date.now();
  const seen: number[] = [];
  for await (const chunk of h.stdout) seen.push(Date.now() - t0, ...[String(chunk).length * 0]);
  const st = await h.exit;
  assert.deepEqual(st, { code: 7, signal: null, timedOut: false });
  const arrivals = seen.filter((_, i) => i % 2 === 0);
  assert.ok(arrivals.length >= 3, `three separate chunks (got ${arrivals.length})`);
  assert.ok(arrivals[0]! < 150, `the first line before the command ends (${arrivals[0]} ms)`);
});

test('exec: stderr separate, env, cwd, stdin', { skip }, async () => {
  const h = await c.exec({ argv: ['sh', '-c', 'echo "$FOO" $(pwd); echo oops >&2; cat'], env: { FOO: 'bar baz' }, cwd: '/tmp', stdin: true });
  const err = collect(h.stderr);
  h.stdin!.end('from stdin\n');
  assert.equal(await text(h), 'bar baz /tmp\nfrom stdin\n');
  assert.equal((await err).toString(), 'oops\n');
  assert.equal((await h.exit).code, 0);
});

test('exec: an unknown command is GUEST_PATH_NOT_FOUND; a bad cwd too', { skip }, async () => {
  await assert.rejects(c.exec({ argv: ['/no/such/binary'] }), (e: unknown) => isHangarError(e, 'GUEST_PATH_NOT_FOUND'));
  await assert.rejects(c.exec({ argv: ['true'], cwd: '/no/such/dir' }), (e: unknown) => isHangarError(e, 'GUEST_PATH_NOT_FOUND'));
});

test('exec: signals and timeouts', { skip }, async () => {
  const h = await c.exec({ argv: ['sleep', '30'] });
  await h.signal('INT');
  assert.deepEqual(await h.exit, { code: null, signal: 'INT', timedOut: false });
  const t = await c.exec({ cmd: 'sleep 30', timeoutMs: 200 });
  const st = await t.exit;
  assert.equal(st.timedOut, true);
  assert.equal(st.signal, 'TERM');
});

test('exec: user switch (as root) by name or uid', { skip: skip || (process.getuid?.() !== 0 && 'needs root') }, async () => {
  const h = await c.exec({ argv: ['id', '-u'], user: 65534 });
  assert.equal((await text(h)).trim(), '65534');
  const n = await c.exec({ argv: ['id', '-un'], user: 'nobody' });
  assert.equal((await text(n)).trim(), 'nobody');
  await assert.rejects(c.exec({ argv: ['true'], user: 'no-such-user-x' }), (e: unknown) => isHangarError(e, 'GUEST_OP_FAILED'));
});

test('background: outlives its stream, listed, attached (kept output), killed', { skip }, async () => {
  const h = await c.exec({ cmd: 'echo started; exec sleep 60', background: true, tag: 'bg1' });
  await new Promise((r) => setTimeout(r, 200));
  h.detach();
  const other = await agent.open(); // another session sees it
  const procs = await other.ps();
  const p = procs.find((x) => x.proc === h.proc);
  assert.ok(p && p.running && p.background && p.tag === 'bg1', JSON.stringify(procs));
  const a = await other.attach(h.proc);
  const out = collect(a.stdout);
  const waited = other.wait(h.proc);
  await other.signal(h.proc, 'KILL');
  assert.equal((await a.exit).signal, 'KILL');
  assert.equal((await out).toString(), 'started\n');
  assert.equal((await waited).signal, 'KILL');
  assert.equal((await other.ps()).find((x) => x.proc === h.proc)?.running, false);
  await assert.rejects(other.signal('p999999', 'TERM'), (e: unknown) => isHangarError(e, 'PROC_NOT_FOUND'));
});

test('a foreground process dies when its stream is detached', { skip }, async () => {
  const h = await c.exec({ argv: ['sleep', '60'] });
  h.detach();
  for (let i = 0; i < 50; i++) {
    const p = (await c.ps()).find((x) => x.proc === h.proc);
    if (p && !p.running) { assert.equal(p.exit?.signal, 'KILL'); return; }
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail('still running');
});

test('pty: a terminal with the size asked for, resized, stdin typed', { skip }, async () => {
  const h = await c.exec({ argv: ['sh'], pty: { cols: 91, rows: 27 } });
  const chunks: Buffer[] = [];
  h.stdout.on('data', (d: Buffer) => chunks.push(d));
  const until = async (re: RegExp): Promise<void> => {
    for (let i = 0; i < 200; i++) { if (re.test(Buffer.concat(chunks).toString())) return; await new Promise((r) => setTimeout(r, 20)); }
    assert.fail(`no ${re} in ${JSON.stringify(Buffer.concat(chunks).toString())}`);
  };
  h.stdin!.write('stty size\n');
  await until(/27 91/);
  await h.resize(120, 40);
  h.stdin!.write('stty size; exit 3\n');
  await until(/40 120/);
  assert.equal((await h.exit).code, 3);
});

test('files: stat, list, mkdir, mv, chmod, chown, rm, with guest errors mapped', { skip }, async () => {
  const d = join(agent.dir, 'f');
  await c.mkdir(join(d, 'a/b'), { parents: true, mode: 0o750 });
  assert.equal((await c.stat(join(d, 'a/b'))).mode, 0o750);
  writeFileSync(join(d, 'a/x.txt'), 'hello');
  const st = await c.stat(join(d, 'a/x.txt'));
  assert.equal(st.type, 'file');
  assert.equal(st.size, 5);
  assert.deepEqual((await c.list(join(d, 'a'))).map((e) => e.name).sort(), ['b', 'x.txt']);
  assert.equal((await c.list(d, { depth: 3 })).length, 3);
  await c.mv(join(d, 'a/x.txt'), join(d, 'y.txt'));
  await c.chmod(join(d, 'y.txt'), 0o600);
  assert.equal(statSync(join(d, 'y.txt')).mode & 0o777, 0o600);
  if (process.getuid?.() === 0) { await c.chown(join(d, 'y.txt'), 65534, 65534); assert.equal(statSync(join(d, 'y.txt')).uid, 65534); }
  await assert.rejects(c.stat(join(d, 'nope')), (e: unknown) => isHangarError(e, 'GUEST_PATH_NOT_FOUND'));
  await assert.rejects(c.mkdir(join(d, 'a')), (e: unknown) => isHangarError(e, 'GUEST_PATH_EXISTS'));
  await assert.rejects(c.rm(join(d, 'a')), (e: unknown) => isHangarError(e, 'GUEST_PATH_EXISTS'));
  await c.rm(join(d, 'a'), { recursive: true });
  await assert.rejects(c.stat(join(d, 'a')), (e: unknown) => isHangarError(e, 'GUEST_PATH_NOT_FOUND'));
});

test('files: a 64 MiB write and read round trip, equal sha256, host memory bounded', { skip }, async () => {
  const size = 64 * 1024 * 1024;
  const path = join(agent.dir, 'big.bin');
  const block = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff;
  const want = createHash('sha256');
  for (let i = 0; i < 64; i++) want.update(block);
  const expect = want.digest('hex');
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
  const t0 = performance.now();
  const r = await c.writeFile(path, Readable.from((function* () { for (let i = 0; i < 64; i++) yield block; })()), { mode: 0o640 });
  const tw = performance.now() - t0;
  assert.equal(r.size, size);
  assert.equal(statSync(path).mode & 0o777, 0o640);
  const t1 = performance.now();
  const { size: got, stream } = await c.readFile(path);
  assert.equal(got, size);
  const h = createHash('sha256');
  for await (const chunk of stream) h.update(chunk as Buffer);
  const tr = performance.now() - t1;
  clearInterval(timer);
  assert.equal(h.digest('hex'), expect);
  assert.ok(peak - rss0 < 64 * 1024 * 1024, `RSS grew by ${((peak - rss0) / 2 ** 20).toFixed(1)} MiB`);
  console.log(`# 64 MiB write ${(64 / (tw / 1000)).toFixed(0)} MB/s, read ${(64 / (tr / 1000)).toFixed(0)} MB/s, RSS +${((peak - rss0) / 2 ** 20).toFixed(1)} MiB`);
  const part = await c.readFile(path, { offset: 1024 * 1024 + 3, length: 10 });
  assert.deepEqual(await collect(part.stream), block.subarray(3, 13));
  await assert.rejects(c.readFile(join(agent.dir, 'none')), (e: unknown) => isHangarError(e, 'GUEST_PATH_NOT_FOUND'));
});

test('write: atomic (the old content until EOF), append, and a cancelled write leaves no temporary file', { skip }, async () => {
  const path = join(agent.dir, 'atomic.txt');
  writeFileSync(path, 'old');
  await c.writeFile(path, Readable.from([Buffer.from('new')]));
  assert.equal(readFileSync(path, 'utf8'), 'new');
  await c.writeFile(path, Readable.from([Buffer.from('+more')]), { append: true });
  assert.equal(readFileSync(path, 'utf8'), 'new+more');
  const ac = new AbortController();
  const slow = (async function* () { yield Buffer.from('partial'); ac.abort(); yield Buffer.from('x'); })();
  await assert.rejects(c.writeFile(path, slow, { signal: ac.signal }), (e: unknown) => isHangarError(e, 'CANCELLED'));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(readFileSync(path, 'utf8'), 'new+more');
  assert.deepEqual((await c.list(agent.dir)).filter((e) => e.name.includes('hangar-')).map((e) => e.name), []);
});

test('watch: create, write, remove events until closed', { skip }, async () => {
  const d = join(agent.dir, 'w');
  mkdirSync(d);
  const w = await c.watch(d);
  const seen: string[] = [];
  const done = (async () => { for await (const e of w) { seen.push(`${e.type} ${e.path.slice(d.length)}`); if (e.type === 'remove') break; } })();
  const x = await c.exec({ cmd: `echo a > ${d}/f; rm ${d}/f` });
  await x.exit;
  await done;
  assert.ok(seen.includes('create /f') && seen.includes('remove /f'), seen.join(', '));
});

test('tcp: a byte stream to a guest-local server, both ways, half-close', { skip }, async () => {
  const srv = createServer((s) => { s.on('data', (d) => s.write(Buffer.from(d.toString().toUpperCase()))); s.on('end', () => s.end('bye')); });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  const d = await c.connectTcp(port);
  d.write('hello ');
  d.end('agent');
  const got = (await collect(d)).toString();
  assert.equal(got, 'HELLO AGENTbye');
  srv.close();
  await assert.rejects(c.connectTcp(1), (e: unknown) => isHangarError(e, 'GUEST_OP_FAILED'));
});

test('flow control: a consumer that does not read stops the guest; the host holds at most the window', { skip }, async () => {
  const h = await c.exec({ cmd: 'i=0; while [ $i -lt 100000 ]; do head -c 65536 /dev/zero; i=$((i+1)); done; echo done >&2' });
  await new Promise((r) => setTimeout(r, 500));
  const buffered = h.stdout.readableLength;
  assert.ok(buffered <= LIMITS.window, `buffered ${buffered}`);
  const ps = (await c.ps()).find((p) => p.proc === h.proc);
  assert.equal(ps?.running, true, 'the producer is blocked, not finished');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(h.stdout.readableLength, buffered, 'nothing more arrived while nobody read');
  // Reading releases it.
  let n = 0;
  h.stdout.on('data', (d: Buffer) => { n += d.length; if (n > 8 * 1024 * 1024) void h.signal('KILL'); });
  assert.equal((await h.exit).signal, 'KILL');
});

test('info: interfaces, routes, listening sockets, failed processes', { skip }, async () => {
  const f = await c.exec({ cmd: 'exit 9' });
  await f.exit;
  const i = await c.info();
  assert.ok(i.ifaces.some((x) => x.name === 'lo' && x.addrs.includes('127.0.0.1/8')), JSON.stringify(i.ifaces));
  assert.ok(Array.isArray(i.routes) && Array.isArray(i.listening));
  assert.ok(i.failed.some((x) => x.exit === 'code 9'));
  assert.ok(i.uptimeMs > 0 && i.bootId.length > 0);
});
