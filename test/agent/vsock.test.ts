// Firecracker's hybrid vsock, end to end against the FAKE Firecracker: PUT /vsock (validated against the API
// definition by the fake), then `CONNECT 1024` on its Unix socket reaches a REAL hangar-agent standing in for the
// guest, and a session runs over it. No listener for a port: AGENT_UNAVAILABLE.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../../src/agent/client.js';
import { Session } from '../../src/agent/session.js';
import { connectVsock } from '../../src/agent/transport.js';
import { isHangarError } from '../../src/errors.js';
import { AGENT_VSOCK_PORT } from '../../src/guest-protocol.js';
import { vsockRequest } from '../../src/vmm/firecracker/requests.js';
import { toHttpRequest } from '../../src/vmm/firecracker/actions.js';
import { agentBinary, collect, startLocalAgent, type LocalAgent } from '../support/agent-binary.js';
import { skipUnlessShared } from '../support/env.js';
import { startFakeFirecracker, type FakeFirecracker } from '../support/fake-firecracker.js';

const bin = agentBinary();
const skip = skipUnlessShared() || ('skip' in bin ? bin.skip : false);
let dir: string;
let fc: FakeFirecracker;
let agent: LocalAgent;
const vsockPath = (): string => join(dir, 'vsock.sock');

before(async () => {
  if (skip || 'skip' in bin) return;
  dir = mkdtempSync(join(tmpdir(), 'hangar-vsock-'));
  agent = await startLocalAgent(bin.path);
  fc = await startFakeFirecracker({ apiSock: join(dir, 'fc.sock'), vsockBackend: (port) => (port === AGENT_VSOCK_PORT ? agent.socket : null) });
  const r = toHttpRequest(vsockRequest(vsockPath()));
  const status = await new Promise<number>((resolve, reject) => {
    const req = request({ socketPath: join(dir, 'fc.sock'), method: r.method, path: r.path, headers: { 'content-type': 'application/json' } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.on('error', reject);
    req.end(JSON.stringify(r.body));
  });
  assert.equal(status, 204, 'the fake accepted PUT /vsock');
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
