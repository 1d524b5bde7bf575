// The socket client against a plain HTTP server on a Unix socket (not the fake: these are transport properties).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isHangarError } from '../../../src/errors.js';
import { FirecrackerApi, parseInstanceInfo, socketRequest } from '../../../src/vmm/firecracker/http.js';
import { machineConfigRequest } from '../../../src/vmm/firecracker/requests.js';

const dir = mkdtempSync(join(tmpdir(), 'hangar-fc-http-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function serve(name: string, handler: (req: IncomingMessage, body: string, res: ServerResponse) => void): Promise<{ sock: string; seen: string[]; close: () => Promise<void> }> {
  const sock = join(dir, name);
  const seen: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += String(c); });
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${req.headers['content-type'] ?? '-'} ${req.headers['content-length'] ?? '-'} ${body}`);
      handler(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
  return { sock, seen, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

test('a PUT carries a JSON body with Content-Length; 204 resolves with no body', async () => {
  const s = await serve('ok.sock', (_req, _b, res) => { res.writeHead(204); res.end(); });
  const r = await socketRequest(s.sock, 'PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 128 });
  assert.deepEqual(r, { status: 204, body: undefined });
  assert.deepEqual(s.seen, ['PUT /machine-config application/json 35 {"vcpu_count":1,"mem_size_mib":128}']);
  await s.close();
});

test('a non-2xx answer becomes VMM_API_ERROR with the fault message, status and action', async () => {
  const s = await serve('err.sock', (_req, _b, res) => {
    res.writeHead(400, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ fault_message: 'Machine config error: The memory size (MiB) is invalid.' }));
  });
  const api = new FirecrackerApi(s.sock, { api: '1.16.1' });
  await assert.rejects(api.send(machineConfigRequest({ vcpus: 1, memMiB: 128 })), (e) => {
    assert.ok(isHangarError(e, 'VMM_API_ERROR'));
    assert.equal(e.message, 'Machine config error: The memory size (MiB) is invalid.');
    assert.equal(e.details.status, 400);
    assert.equal(e.details.action, 'put-machine-config');
    return true;
  });
  assert.equal(api.model.bootConfigured, false, 'a refused request changes nothing');
  assert.deepEqual(api.journal.map((j) => [j.kind, j.status]), [['put-machine-config', 400]]);
  await s.close();
});

test('a refused action never reaches the socket', async () => {
  const s = await serve('refuse.sock', (_req, _b, res) => { res.writeHead(204); res.end(); });
  const api = new FirecrackerApi(s.sock, { api: '1.9.1', model: { state: 'Running', bootConfigured: true } });
  await assert.rejects(api.send(machineConfigRequest({ vcpus: 1, memMiB: 128 })), /put-machine-config not allowed in state Running/);
  await assert.rejects(api.send({ kind: 'snapshot-create', body: { snapshot_path: '/a', mem_file_path: '/b' } }), /snapshot-create not allowed in state Running: the microVM must be Paused/);
  assert.deepEqual(s.seen, []);
  const arm = new FirecrackerApi(s.sock, { api: '1.9.1', arch: 'aarch64', model: { state: 'Running', bootConfigured: true } });
  await assert.rejects(arm.send({ kind: 'send-ctrl-alt-del' }), (e) => isHangarError(e, 'INVALID_ARGUMENT'));
  assert.deepEqual(s.seen, []);
  await s.close();
});

test('a silent server times out; a missing socket fails fast', async () => {
  const s = await serve('slow.sock', () => { /* never answers */ });
  const t0 = Date.now();
  await assert.rejects(socketRequest(s.sock, 'GET', '/', undefined, 150), (e) => isHangarError(e, 'VMM_API_ERROR') && e.details.cause === 'timeout');
  assert.ok(Date.now() - t0 < 1000);
  await s.close();
  await assert.rejects(socketRequest(join(dir, 'absent.sock'), 'GET', '/', undefined, 1000), (e) => isHangarError(e, 'VMM_API_ERROR') && e.details.cause === 'ENOENT');
});

test('GET / is read strictly as an InstanceInfo', () => {
  assert.deepEqual(parseInstanceInfo({ app_name: 'Firecracker', id: 'a', state: 'Paused', vmm_version: '1.9.1' }).state, 'Paused');
  assert.throws(() => parseInstanceInfo({ app_name: 'Firecracker', id: 'a', state: 'Halted', vmm_version: '1.9.1' }), /unknown state/);
  assert.throws(() => parseInstanceInfo({ id: 'a', state: 'Running', vmm_version: '1' }), /app_name missing/);
  assert.throws(() => parseInstanceInfo('<html>'), /not an object/);
});
