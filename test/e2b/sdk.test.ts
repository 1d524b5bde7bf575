// The REAL e2b SDK (node_modules/e2b) against Hangar's E2B layer over a FAKE guest agent (no VM: commands run on the
// host, files live under a temp directory): the REST mapping (connect, info, list with metadata and paging, set
// timeout, kill, tenancy, a wrong API key) and envd's connect-rpc process and filesystem services and /files, as
// the SDK really calls them. Boots, pause/resume and create are in sdk.int.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthenticationError, CommandExitError, FileNotFoundError, NotFoundError, Sandbox, TimeoutError } from 'e2b';
import { Sandbox as Desktop } from '@e2b/desktop';
import type { Action } from '../../src/control/actions.js';
import { createE2b, type E2b } from '../../src/e2b/index.js';
import { newAccessToken } from '../../src/e2b/model.js';
import { createApiHarness, type ApiHarness } from '../support/api.js';
import { createFakeAgent, type FakeAgentPort } from '../support/fake-agent.js';

const VM = 'vm-e2b00001';
const OTHER = 'vm-e2b00002';
const B_VM = 'vm-e2b0000b';

describe('e2b SDK over the E2B layer (fake agent)', () => {
  let h: ApiHarness;
  let e2b: E2b;
  let agent: FakeAgentPort;
  let opts: { apiKey: string; apiUrl: string; sandboxUrl: string; requestTimeoutMs: number };
  let bKey: string;
  let detach: () => void;
  const scratch = join(tmpdir(), `hangar-e2b-${process.pid}`);
  const actions: Action[] = [];
  const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
  const answers: Record<string, Record<string, unknown>> = {
    cursor_position: { action: 'cursor_position', x: 10, y: 20 },
    screen_size: { action: 'screen_size', width: 1280, height: 800 },
    screenshot: { action: 'screenshot', image: { type: 'base64', media_type: 'image/png', data: PNG.toString('base64') } },
  };

  before(async () => {
    e2b = createE2b({ desktop: { run: async (_vm, a) => { actions.push(a); return answers[a.action] ?? { action: a.action, done: true }; } }, limits: { vcpus: { min: 1, max: 4 }, memMiB: { min: 128, max: 8192 }, ttlSeconds: { min: 1, max: 86_400 }, name: { maxLength: 63 } } });
    h = await createApiHarness({ extraRoutes: (c) => e2b.routes(c) });
    agent = createFakeAgent({ root: join(scratch, 'agent') });
    h.ctx.agents = agent;
    detach = await e2b.attach(h.app, h.ctx);
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (h.app.server.address() as AddressInfo).port;
    const a = h.key('ta', 'write');
    bKey = h.key('tb', 'write').secret;
    opts = { apiKey: a.secret, apiUrl: `http://127.0.0.1:${port}/e2b`, sandboxUrl: `http://127.0.0.1:${port}/e2b/sandbox`, requestTimeoutMs: 20_000 };
    const fields = (metadata: Record<string, string>, startedAt: string) => ({
      templateId: 'desktop', metadata, envs: { HANGAR_E2B: 'yes' }, envdAccessToken: newAccessToken(), startedAt, endAt: Date.now() + 600_000, autoPause: false,
    });
    h.insertVm(VM, 'ready', 'ta');
    h.insertVm(OTHER, 'ready', 'ta');
    h.insertVm(B_VM, 'ready', 'tb');
    e2b.state.set(VM, fields({ app: 'one', team: 'x' }, '2026-01-01T00:00:00.000Z'));
    e2b.state.set(OTHER, fields({ app: 'two', team: 'x' }, '2026-01-01T00:00:01.000Z'));
    e2b.state.set(B_VM, fields({ app: 'one', team: 'x' }, '2026-01-01T00:00:02.000Z'));
    mkdirSync(join(agent.rootOf(VM), 'work'), { recursive: true });
    mkdirSync(join(agent.rootOf(VM), 'tmp'), { recursive: true });
  });
  after(async () => { detach(); agent.close(); await h.close(); });

  const sandbox = () => Sandbox.connect(VM, opts);

  test('connect answers the sandbox with its envd token; info reads it back', async () => {
    const sbx = await sandbox();
    assert.equal(sbx.sandboxId, VM);
    const info = await sbx.getInfo();
    assert.equal(info.sandboxId, VM);
    assert.equal(info.templateId, 'desktop');
    assert.deepEqual(info.metadata, { app: 'one', team: 'x' });
    assert.equal(info.state, 'running');
    assert.ok(info.endAt.getTime() > Date.now());
  });

  test('commands.run: output, streamed callbacks, sandbox envs, CommandExitError with exit code and stderr', async () => {
    const sbx = await sandbox();
    const chunks: string[] = [];
    const r = await sbx.commands.run('echo one; sleep 0.2; echo two; echo "$HANGAR_E2B $X"', { envs: { X: 'y' }, onStdout: (d) => { chunks.push(d); } });
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, 'one\ntwo\nyes y\n');
    assert.ok(chunks.length >= 2, `streamed in ${chunks.length} chunk(s)`);
    await assert.rejects(sbx.commands.run('echo bad >&2; exit 3'), (e: unknown) => {
      assert.ok(e instanceof CommandExitError);
      assert.equal(e.exitCode, 3);
      assert.equal(e.stderr, 'bad\n');
      return true;
    });
  });

  test('background commands are listed and killed; stdin reaches a command', async () => {
    const sbx = await sandbox();
    const bg = await sbx.commands.run('sleep 30', { background: true });
    assert.ok((await sbx.commands.list()).some((p) => p.pid === bg.pid && p.args.includes('sleep 30')));
    assert.equal(await sbx.commands.kill(bg.pid), true);
    await assert.rejects(bg.wait(), (e: unknown) => e instanceof CommandExitError && e.exitCode !== 0);
    assert.equal(await sbx.commands.kill(999_999), false);
    const cat = await sbx.commands.run('cat', { background: true, stdin: true });
    await sbx.commands.sendStdin(cat.pid, 'hello stdin');
    await sbx.commands.closeStdin(cat.pid);
    assert.equal((await cat.wait()).stdout, 'hello stdin');
  });

  test('files: text and bytes round trip, list, exists, info, makeDir, rename, remove, missing files', async () => {
    const sbx = await sandbox();
    await sbx.files.write('/work/a.txt', 'hello file');
    assert.equal(await sbx.files.read('/work/a.txt'), 'hello file');
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    await sbx.files.write('/work/b.bin', bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    assert.ok(Buffer.from(await sbx.files.read('/work/b.bin', { format: 'bytes' })).equals(bytes));
    assert.ok(readFileSync(join(agent.rootOf(VM), 'work', 'b.bin')).equals(bytes));
    assert.deepEqual((await sbx.files.list('/work')).map((e) => e.name).sort(), ['a.txt', 'b.bin']);
    assert.equal(await sbx.files.exists('/work/a.txt'), true);
    assert.equal(await sbx.files.exists('/work/none'), false);
    const info = await sbx.files.getInfo('/work/b.bin');
    assert.equal(info.type, 'file');
    assert.equal(info.size, bytes.length);
    assert.equal(await sbx.files.makeDir('/work/d', { user: 'root' }), true);
    assert.equal(await sbx.files.makeDir('/work/d', { user: 'root' }), false);
    assert.equal((await sbx.files.rename('/work/a.txt', '/work/d/a.txt')).path, '/work/d/a.txt');
    await sbx.files.remove('/work/d');
    assert.equal(await sbx.files.exists('/work/d'), false);
    await assert.rejects(sbx.files.read('/work/none'), FileNotFoundError);
    await assert.rejects(sbx.files.getInfo('/work/none'), FileNotFoundError);
  });

  test('watchDir streams the changes in a directory', async () => {
    const sbx = await sandbox();
    const seen: string[] = [];
    const w = await sbx.files.watchDir('/work', (e) => { seen.push(`${e.type}:${e.name}`); });
    writeFileSync(join(agent.rootOf(VM), 'work', 'watched.txt'), 'x');
    for (let i = 0; i < 50 && !seen.some((s) => s.endsWith(':watched.txt')); i++) await new Promise((r) => setTimeout(r, 50));
    await w.stop();
    assert.ok(seen.some((s) => s.endsWith(':watched.txt')), seen.join(','));
  });

  test('list filters by metadata and pages; another tenant\'s sandboxes are neither listed nor found', async () => {
    const all = await Sandbox.list(opts).nextItems();
    assert.deepEqual(all.map((s) => s.sandboxId).sort(), [VM, OTHER]);
    assert.deepEqual((await Sandbox.list({ ...opts, query: { metadata: { app: 'one' } } }).nextItems()).map((s) => s.sandboxId), [VM]);
    const pager = Sandbox.list({ ...opts, limit: 1 });
    const first = await pager.nextItems();
    assert.equal(pager.hasNext, true);
    const second = await pager.nextItems();
    assert.deepEqual([...first, ...second].map((s) => s.sandboxId), [VM, OTHER]);
    assert.equal(pager.hasNext, false);
    await assert.rejects(Sandbox.getInfo(B_VM, opts), NotFoundError);
    await assert.rejects(Sandbox.connect(B_VM, opts), NotFoundError);
    assert.equal(await Sandbox.kill(B_VM, opts), false);
    assert.equal((await Sandbox.list({ ...opts, apiKey: bKey }).nextItems()).length, 1);
  });

  test('a wrong API key or envd token is refused; a killed sandbox times out; setTimeout moves endAt', async () => {
    await assert.rejects(Sandbox.list({ ...opts, apiKey: 'hgk_wrong' }).nextItems(), AuthenticationError);
    await assert.rejects(Sandbox.getInfo(VM, { ...opts, apiKey: 'hgk_wrong' }), AuthenticationError);
    const forged = new Sandbox({ ...opts, sandboxId: VM, envdVersion: '0.5.7', envdAccessToken: 'forged' } as never) as Sandbox;
    await assert.rejects(forged.commands.run('true'), AuthenticationError);
    await Sandbox.setTimeout(OTHER, 1000_000, opts);
    assert.ok((await Sandbox.getInfo(OTHER, opts)).endAt.getTime() > Date.now() + 900_000);
    const doomed = await Sandbox.connect(OTHER, opts);
    assert.equal(await Sandbox.kill(OTHER, opts), true);
    assert.equal(await Sandbox.kill(OTHER, opts), false);
    await assert.rejects(doomed.commands.run('true'), (e: unknown) => e instanceof TimeoutError || (e as Error).name === 'SandboxNotFoundError');
  });

  test('@e2b/desktop: input, cursor, screen size and screenshots are answered by computer use, not guest tools', async () => {
    const d = await Desktop.connect(VM, opts);
    actions.length = 0;
    await d.moveMouse(30, 40);
    await d.leftClick();
    await d.doubleClick();
    await d.rightClick();
    await d.middleClick();
    await d.scroll('down', 3);
    await d.drag([1, 2], [3, 4]);
    await d.write("it's");
    await d.press('enter');
    assert.deepEqual(await d.getCursorPosition(), { x: 10, y: 20 });
    assert.deepEqual(await d.getScreenSize(), { width: 1280, height: 800 });
    const shot = await d.screenshot();
    assert.ok(Buffer.from(shot).equals(PNG));
    const names = actions.map((a) => a.action);
    assert.deepEqual(names, ['mouse_move', 'left_click', 'double_click', 'right_click', 'middle_click', 'scroll', 'mouse_move', 'left_mouse_down', 'mouse_move', 'left_mouse_up', 'type', 'key', 'cursor_position', 'screen_size', 'screenshot']);
    const [move, typed] = [actions[0], actions[10]];
    assert.ok(move?.action === 'mouse_move' && typed?.action === 'type');
    assert.deepEqual(move.coordinate, [30, 40]);
    assert.equal(typed.text, "it's");
    assert.ok(!agent.execs.some((e) => e.req.argv?.[3]?.startsWith('xdotool')), 'no xdotool ran in the guest');
  });
});
