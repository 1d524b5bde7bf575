// The file routes over the FAKE agent (guest files under a temp directory per VM): streamed upload and download
// with equal bytes and Content-Length from the size, the file operations, a watch, and the VM-to-VM copy.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SseParser } from '../../src/cli/sse.js';
import { auth } from '../support/api.js';
import { createAgentApi, type AgentApi } from './agent-harness.js';

let api: AgentApi;
before(async () => { api = await createAgentApi(); });
after(async () => { await api.close(); });

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const post = (op: string, payload: object, id = 'vm-a') => api.app.inject({ method: 'POST', url: `/v1/vms/${id}/files/${op}`, headers: auth, payload });

describe('files', () => {
  test('upload (past the API body limit) and download round-trip, streamed, with Content-Length', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 17);
    const put = await fetch(`${api.url}/v1/vms/vm-a/files?path=/up.bin&mode=0640`, {
      method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: new ReadableStream({ start(c) { for (let i = 0; i < data.length; i += 65536) c.enqueue(data.subarray(i, i + 65536)); c.close(); } }),
      duplex: 'half',
    } as RequestInit);
    assert.equal(put.status, 200, await put.clone().text());
    assert.deepEqual(await put.json(), { path: '/up.bin', size: data.length });
    assert.equal(statSync(join(api.agent.rootOf('vm-a'), 'up.bin')).mode & 0o777, 0o640);
    const get = await fetch(`${api.url}/v1/vms/vm-a/files?path=/up.bin`, { headers: auth });
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('content-length'), String(data.length));
    assert.equal(sha(Buffer.from(await get.arrayBuffer())), sha(data));
    const part = await api.app.inject({ method: 'GET', url: '/v1/vms/vm-a/files?path=/up.bin&offset=10&length=5', headers: auth });
    assert.deepEqual(part.rawPayload, data.subarray(10, 15));
  });

  test('a missing file is 404 GUEST_PATH_NOT_FOUND; a relative path 400; octet-stream elsewhere 400', async () => {
    const r = await api.app.inject({ method: 'GET', url: '/v1/vms/vm-a/files?path=/nope', headers: auth });
    assert.deepEqual([r.statusCode, r.json().error.code], [404, 'GUEST_PATH_NOT_FOUND']);
    assert.equal((await api.app.inject({ method: 'GET', url: '/v1/vms/vm-a/files/stat?path=etc/passwd', headers: auth })).statusCode, 400);
    const wrong = await api.app.inject({ method: 'POST', url: '/v1/vms/vm-a/files/mkdir', headers: { ...auth, 'content-type': 'application/octet-stream' }, payload: Buffer.from('x') });
    assert.equal(wrong.statusCode, 400);
  });

  test('mkdir, stat, list, mv, chmod, rm', async () => {
    assert.equal((await post('mkdir', { path: '/d/e', parents: true, mode: '0750' })).statusCode, 200);
    assert.equal((await post('mkdir', { path: '/d/e' })).json().error.code, 'GUEST_PATH_EXISTS');
    await fetch(`${api.url}/v1/vms/vm-a/files?path=/d/f.txt`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: 'hello' });
    const st = (await api.app.inject({ method: 'GET', url: '/v1/vms/vm-a/files/stat?path=/d/f.txt', headers: auth })).json();
    assert.deepEqual([st.type, st.size], ['file', 5]);
    const list = (await api.app.inject({ method: 'GET', url: '/v1/vms/vm-a/files/list?path=/d', headers: auth })).json().entries;
    assert.deepEqual(list.map((e: { name: string; type: string }) => `${e.name}:${e.type}`), ['e:dir', 'f.txt:file']);
    assert.equal((await post('mv', { from: '/d/f.txt', to: '/d/g.txt' })).statusCode, 200);
    assert.equal((await post('chmod', { path: '/d/g.txt', mode: 0o600 })).statusCode, 200);
    assert.equal(statSync(join(api.agent.rootOf('vm-a'), 'd/g.txt')).mode & 0o777, 0o600);
    assert.equal((await post('rm', { path: '/d' })).statusCode >= 400, true, 'a directory with entries needs recursive');
    assert.equal((await post('rm', { path: '/d', recursive: true })).statusCode, 200);
    assert.equal((await post('rm', { path: '/d' })).json().error.code, 'GUEST_PATH_NOT_FOUND');
  });

  test('copy from one VM to another in one call keeps bytes and mode', async () => {
    const data = randomBytes(300_000);
    await fetch(`${api.url}/v1/vms/vm-a/files?path=/creds.json&mode=0600`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: data });
    await post('mkdir', { path: '/home' }, 'vm-b');
    const r = await post('copy', { toVm: 'vm-b', from: '/creds.json', to: '/home/creds.json' });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), { fromVm: 'vm-a', from: '/creds.json', toVm: 'vm-b', to: '/home/creds.json', size: data.length });
    const copied = join(api.agent.rootOf('vm-b'), 'home/creds.json');
    assert.equal(sha(readFileSync(copied)), sha(data));
    assert.equal(statSync(copied).mode & 0o777, 0o600);
    assert.equal((await post('copy', { toVm: 'vm-off', from: '/creds.json' })).json().error.code, 'VM_INVALID_STATE');
  });

  test('watch streams changes as SSE until the client leaves', async () => {
    await post('mkdir', { path: '/w' });
    const ctl = new AbortController();
    const res = await fetch(`${api.url}/v1/vms/vm-a/files/watch?path=/w`, { headers: auth, signal: ctl.signal });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    await fetch(`${api.url}/v1/vms/vm-a/files?path=/w/new.txt`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: 'x' });
    const p = new SseParser();
    let seen: { type: string; path: string } | undefined;
    while (!seen) {
      const { value } = await reader.read();
      const e = p.push(new TextDecoder().decode(value)).find((x) => x.event === 'change');
      if (e) seen = JSON.parse(e.data);
    }
    assert.match(seen.path, /^\/w\//);
    ctl.abort();
  });
});
