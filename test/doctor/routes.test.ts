// GET /v1/doctor and `hangar doctor` through it, on an API harness whose network was never set up (its namespace
// does not exist): the doctor must name that as the cause, in the documented shape, and the CLI must exit 1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs } from 'node:util';
import { commands } from '../../src/cli/doctor.js';
import type { Command } from '../../src/cli/command.js';
import type { DoctorReport } from '../../src/doctor/model.js';
import { exitCodeOf, isHangarError } from '../../src/errors.js';
import { auth, createApiHarness, TEST_TOKEN, type ApiHarness } from '../support/api.js';
import { skipUnlessRoot } from '../support/env.js';

const doctorCmd = commands.find((c) => c.path.join(' ') === 'doctor') as Command;

async function cli(argv: string[], env: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  let out = '';
  try {
    const p = parseArgs({ args: argv, options: doctorCmd.options, allowPositionals: true, strict: true });
    const code = await doctorCmd.run({ values: p.values as Record<string, string | boolean | undefined>, positionals: p.positionals }, { out: (s) => { out += s; }, err: () => undefined });
    return { code, out, err: '' };
  } catch (e) {
    if (!isHangarError(e)) throw e;
    return { code: exitCodeOf(e.code), out, err: `${e.code}: ${e.message}` };
  } finally {
    for (const [k, v] of Object.entries(saved)) { if (v === undefined) delete process.env[k]; else process.env[k] = v; }
  }
}

describe('GET /v1/doctor', { skip: skipUnlessRoot(), concurrency: false }, () => {
  let h: ApiHarness;
  let url: string;
  before(async () => {
    h = await createApiHarness({ withDoctor: true });
    url = await h.app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => { await h?.close(); });

  test('a missing VM namespace is the most likely cause; the answer has the documented shape', async () => {
    const res = await h.app.inject({ method: 'GET', url: '/v1/doctor', headers: auth });
    assert.equal(res.statusCode, 200);
    const r = res.json() as DoctorReport;
    assert.equal(r.ok, false);
    assert.equal(r.vm, null);
    assert.equal(r.mostLikelyCause?.code, 'DOC_NETNS_MISSING');
    assert.match(r.mostLikelyCause!.message, /hgt-unused/);
    for (const f of r.findings) {
      assert.deepEqual(Object.keys(f).filter((k) => !['causedBy'].includes(k)).sort(), ['check', 'code', 'evidence', 'fix', 'message', 'option', 'severity']);
    }
    assert.ok(r.checks.some((c) => c.id === 'host.bridge' && c.ran.some((x) => x.includes('ip -n hgt-unused'))), 'says what it ran');
    assert.ok(r.findings.filter((f) => f.code === 'DOC_PROBE_FAILED').every((f) => f.causedBy?.includes('DOC_NETNS_MISSING')));
  });

  test('?vm= adds the VM checks; an unknown VM is 404 VM_NOT_FOUND; a failed VM is reported as failed', async () => {
    const missing = await h.app.inject({ method: 'GET', url: '/v1/doctor?vm=vm-nope', headers: auth });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, 'VM_NOT_FOUND');
    h.insertVm('vm-failed1', 'failed');
    const r = (await h.app.inject({ method: 'GET', url: '/v1/doctor?vm=vm-failed1', headers: auth })).json() as DoctorReport;
    assert.equal(r.vm?.id, 'vm-failed1');
    assert.ok(r.findings.some((f) => f.code === 'DOC_VM_FAILED'));
    assert.equal(r.checks.find((c) => c.id === 'vm.vnc')?.status, 'skipped');
    const unauth = await h.app.inject({ method: 'GET', url: '/v1/doctor' });
    assert.equal(unauth.statusCode, 401);
  });

  test('hangar doctor asks the controller: human output lists the checks then the cause, exit 1; --json is the report', async () => {
    const env = { HANGAR_URL: url, HANGAR_TOKEN: TEST_TOKEN };
    const human = await cli([], env);
    assert.equal(human.code, 1, human.err);
    assert.match(human.out, /^(ok|info|WARN|FAIL|skip)\s+host\.netns\s+ip -j netns list\s+→\s+missing: hgt-unused/m);
    assert.match(human.out, /Most likely cause: DOC_NETNS_MISSING/);
    const json = await cli(['--json'], env);
    assert.equal(json.code, 1);
    assert.equal((JSON.parse(json.out) as DoctorReport).mostLikelyCause?.code, 'DOC_NETNS_MISSING');
  });
});
