// The CLI's HTTP client: the API's error envelope becomes a HangarError with the same code; answers without one
// (or with a code this CLI does not know) get the code their HTTP status means; HANGAR_URL + HANGAR_TOKEN need no
// local state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientFromEnv, errorFromResponse } from '../../src/cli/client.js';
import { isHangarError } from '../../src/errors.js';

test('the envelope keeps code, message and details', () => {
  const e = errorFromResponse(409, JSON.stringify({ error: { code: 'VM_NAME_TAKEN', message: 'a VM named alice exists', details: { field: 'name' } } }), 'POST /v1/vms');
  assert.deepEqual([e.code, e.message, e.details.field, e.details.status], ['VM_NAME_TAKEN', 'a VM named alice exists', 'name', 409]);
});

test('no envelope, or an unknown code: the code of the HTTP status', () => {
  assert.equal(errorFromResponse(404, '<html>', 'GET /x').code, 'NOT_FOUND');
  assert.equal(errorFromResponse(502, '', 'GET /x').message, 'GET /x: HTTP 502');
  assert.equal(errorFromResponse(502, '', 'GET /x').code, 'INTERNAL');
  const newer = errorFromResponse(400, JSON.stringify({ error: { code: 'SOMETHING_NEW', message: 'm' } }), 'x');
  assert.deepEqual([newer.code, newer.details.serverCode], ['INVALID_ARGUMENT', 'SOMETHING_NEW']);
  const auth = errorFromResponse(401, '', 'x', '/var/lib/hangar/token');
  assert.equal(auth.code, 'UNAUTHORIZED');
  assert.match(String(auth.details.hint), /from \/var\/lib\/hangar\/token/);
});

test('HANGAR_URL and HANGAR_TOKEN: no config, endpoint or token file is read', () => {
  const c = clientFromEnv({ HANGAR_URL: 'http://10.0.0.1:7070/', HANGAR_TOKEN: 't', HANGAR_CONFIG: '/nonexistent/config.json' });
  assert.equal(c.url, 'http://10.0.0.1:7070');
  assert.throws(() => clientFromEnv({ HANGAR_STATE_DIR: '/nonexistent-hangar-state' }), (e: unknown) => isHangarError(e, 'UNAUTHORIZED') && /set HANGAR_TOKEN/.test(e.message));
});
