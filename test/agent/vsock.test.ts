// Firecracker's hybrid vsock, end to end against the FAKE Firecracker: PUT /vsock (validated against the API
// definition by the fake), then `CONNECT 1024` on its Unix socket reaches a REAL hangar-agent standing in for the
// guest, and a session runs over it. No listener for a port: AGENT_UNAVAILABLE. A VMM restored from another VMM's
// snapshot (a clone) binds the vsock socket the snapshot recorded unless snapshot/load's vsock_override (1.16.1)
// names its own: with it, an unjailed clone's agent answers on its own path while the original still runs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../../src/agent/client.js';
import { Session } from '../../src/agent/session.js';
import { connectVsock } from '../../src/agent/transport.js';
import { isHangarError } from '../../src/errors.js';
import { AGENT_VSOCK_PORT } from '../../src/guest-protocol.js';
import { snapshotCreateRequest, snapshotLoadRequest, vsockRequest } from '../../src/vmm/firecracker/requests.js';
import { toHttpRequest, type FirecrackerAction } from '../../src/vmm/firecracker/actions.js';
import { agentBinary, collect, startLocalAgent, type LocalAgent } from '../support/agent-binary.js';
import { skipUnlessShared } from '../support/env.js';
import { startFakeFirecracker, type FakeFirecracker } from '../support/fake-firecracker.js';

const bin = agentBinary();
const skip = skipUnlessShared() || ('skip' in bin ? bin.skip : false);
let dir: string;
let fc: FakeFirecracker;
let agent: LocalAgent;
const vsockPath = (): string => join(dir, 'vsock.sock');

/** One request to a (fake) VMM's API socket; resolves with the status and the body. */
function send(apiSock: string, a: FirecrackerAction | { method: string; path: string; body: unknown }): Promise<{ status: number; body: string }> {
  const r = 'kind' in a ? toHttpRequest(a) : a;
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: apiSock, method: r.method, path: r.path, headers: { 'content-type': 'application/json' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(r.body));
  });
}

async function agentAnswers(path: string): Promise<string> {
  const c = new AgentClient(new Session(await connectVsock(path, AGENT_VSOCK_PORT)));
  await c.s.start();
  try {
    const h = await c.exec({ argv: ['echo', 'over vsock'] });
    const out = (await collect(h.stdout)).toString();
    assert.equal((await h.exit).code, 0);
    return out;
  } finally {
    c.close();
  }
}

before(async () => {
  if (skip || 'skip' in bin) return;
  dir = mkdtempSync(join(tmpdir(), 'hangar-vsock-'));
  agent = await startLocalAgent(bin.path);
  fc = await startFakeFirecracker({ apiSock: join(dir, 'fc.sock'), vsockBackend: (port) => (port === AGENT_VSOCK_PORT ? agent.socket : null) });
  assert.equal((await send(join(dir, 'fc.sock'), vsockRequest(vsockPath()))).status, 204, 'the fake accepted PUT /vsock');
});
after(async () => {
  await fc?.close();
  await agent?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a session over the vsock socket: CONNECT 1024, OK, HELLO, exec', { skip }, async () => {
  const s = new Session(await connectVsock(vsockPath(), AGENT_VSOCK_PORT));
  await s.start();
  const c = new AgentClient(s);
  const h = await c.exec({ argv: ['echo', 'over vsock'] });
  assert.equal((await collect(h.stdout)).toString(), 'over vsock\n');
  assert.equal((await h.exit).code, 0);
  assert.ok(fc.trace.some((t) => t.method === 'PUT' && t.path === '/vsock' && t.status === 204));
  c.close();
});

test('no listener on the guest port: AGENT_UNAVAILABLE', { skip }, async () => {
  await assert.rejects(connectVsock(vsockPath(), 4242, 2000), (e: unknown) => isHangarError(e, 'AGENT_UNAVAILABLE'));
});

test('a clone restored beside its original: vsock_override gives it its own socket, and its agent answers there', { skip }, async () => {
  // The original boots and is snapshotted (the snapshot records its vsock socket), and keeps running.
  const kernel = join(dir, 'vmlinux');
  writeFileSync(kernel, '');
  const fcSock = join(dir, 'fc.sock');
  assert.equal((await send(fcSock, { method: 'PUT', path: '/boot-source', body: { kernel_image_path: kernel, boot_args: 'console=ttyS0' } })).status, 204);
  assert.equal((await send(fcSock, { method: 'PUT', path: '/actions', body: { action_type: 'InstanceStart' } })).status, 204);
  assert.equal((await send(fcSock, { method: 'PATCH', path: '/vm', body: { state: 'Paused' } })).status, 204);
  const files = { snapshotPath: join(dir, 'vmstate'), memFilePath: join(dir, 'memory') };
  assert.equal((await send(fcSock, snapshotCreateRequest(files))).status, 204);
  const clone = async (name: string, vsock?: string): Promise<{ fc: FakeFirecracker; status: number; body: string }> => {
    const c = await startFakeFirecracker({ apiSock: join(dir, `${name}.sock`), vsockBackend: (port) => (port === AGENT_VSOCK_PORT ? agent.socket : null) });
    return { fc: c, ...(await send(join(dir, `${name}.sock`), snapshotLoadRequest({ ...files, ...(vsock ? { vsockPath: vsock } : {}) }, '1.16.1'))) };
  };
  // Without the override the clone's VMM binds where the original's socket is: the load fails (Address in use).
  const bare = await clone('fc-bare');
  await bare.fc.close();
  assert.equal(bare.status, 400);
  assert.match(bare.body, /vsock.*Address in use/);
  // With it, the clone's socket is its own and its agent answers there, and the original's still does.
  const own = await clone('fc-own', join(dir, 'clone-vsock.sock'));
  try {
    assert.equal(own.status, 204, own.body);
    assert.equal(await agentAnswers(join(dir, 'clone-vsock.sock')), 'over vsock\n');
    assert.equal(await agentAnswers(vsockPath()), 'over vsock\n');
  } finally {
    await own.fc.close();
  }
  assert.throws(() => snapshotLoadRequest({ ...files, vsockPath: '/x.sock' }, '1.13.1'), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'), 'not sent to a VMM whose API lacks it');
});
