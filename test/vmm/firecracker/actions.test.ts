import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHangarError } from '../../../src/errors.js';
import { afterSuccess, FRESH_VMM, refusal, toHttpRequest } from '../../../src/vmm/firecracker/actions.js';
import type { FirecrackerAction, VmmModel } from '../../../src/vmm/firecracker/actions.js';
import {
  bootSourceRequest, entropyRequest, loggerRequest, machineConfigRequest, networkInterfaceRequest, pauseRequest, resumeRequest,
  rootDriveRequest, snapshotCreateRequest, snapshotLoadRequest,
} from '../../../src/vmm/firecracker/requests.js';

const running: VmmModel = { state: 'Running', bootConfigured: true };
const paused: VmmModel = { state: 'Paused', bootConfigured: true };
const configured: VmmModel = { state: 'Not started', bootConfigured: true };

const preboot: FirecrackerAction[] = [
  loggerRequest('/run/vm/fc.log'),
  machineConfigRequest({ vcpus: 2, memMiB: 512 }),
  bootSourceRequest('/k/vmlinux', 'console=ttyS0'),
  rootDriveRequest('/d/rootfs.ext4'),
  networkInterfaceRequest({ tap: 'tap0', mac: '02:00:00:00:00:01' }, '1.16.1'),
  entropyRequest(),
  { kind: 'instance-start' },
];
const load = snapshotLoadRequest({ snapshotPath: '/s/vm.snap', memFilePath: '/s/vm.mem' }, '1.16.1');
const create = snapshotCreateRequest({ snapshotPath: '/s/vm.snap', memFilePath: '/s/vm.mem' });

function refusedWith(a: FirecrackerAction, m: VmmModel): string {
  const r = refusal(a, m);
  assert.ok(r, `${a.kind} should be refused in ${m.state}`);
  assert.ok(isHangarError(r, 'VMM_NOT_ALLOWED_IN_STATE'));
  assert.equal(r.details.state, m.state);
  return r.message;
}

test('preboot-only calls are accepted before InstanceStart and refused after it', () => {
  for (const a of preboot) {
    assert.equal(refusal(a, FRESH_VMM), null, a.kind);
    for (const m of [running, paused]) assert.match(refusedWith(a, m), new RegExp(`^${a.kind} not allowed in state ${m.state}`));
  }
});

test('pause, resume and Ctrl-Alt-Del need a started microVM', () => {
  for (const a of [pauseRequest(), resumeRequest(), { kind: 'send-ctrl-alt-del' } as const]) {
    assert.match(refusedWith(a, FRESH_VMM), /not allowed in state Not started: only after the microVM has started/);
    assert.equal(refusal(a, running), null);
    assert.equal(refusal(a, paused), null, 'repeated pause/resume is idempotent in Firecracker');
  }
});

test('snapshot-create only when Paused', () => {
  assert.match(refusedWith(create, FRESH_VMM), /must be Paused/);
  assert.match(refusedWith(create, running), /snapshot-create not allowed in state Running/);
  assert.equal(refusal(create, paused), null);
});

test('snapshot-load only on a fresh process: the logger may precede it, boot resources may not', () => {
  assert.equal(refusal(load, FRESH_VMM), null);
  const afterLogger = afterSuccess(loggerRequest('/l'), FRESH_VMM);
  assert.equal(refusal(load, afterLogger), null, 'logger is not a boot-specific resource');
  for (const a of preboot.slice(1, 5)) {
    const m = afterSuccess(a, afterLogger);
    assert.equal(m.bootConfigured, true, a.kind);
    assert.match(refusedWith(load, m), /boot-specific resources are configured/);
  }
  assert.match(refusedWith(load, running), /only on a fresh Firecracker process/);
  assert.match(refusedWith(load, configured), /snapshot-load not allowed in state Not started/);
});

test('state transitions: start → Running, pause ↔ resume, load → Paused unless resume_vm', () => {
  assert.equal(afterSuccess({ kind: 'instance-start' }, configured).state, 'Running');
  assert.equal(afterSuccess(pauseRequest(), running).state, 'Paused');
  assert.equal(afterSuccess(resumeRequest(), paused).state, 'Running');
  assert.equal(afterSuccess(load, FRESH_VMM).state, 'Paused');
  const loadRun = snapshotLoadRequest({ snapshotPath: '/a', memFilePath: '/b', resume: true }, '1.9.1');
  assert.equal(afterSuccess(loadRun, FRESH_VMM).state, 'Running');
  assert.deepEqual(afterSuccess(create, paused), paused);
});

test('each action maps to one HTTP request', () => {
  assert.deepEqual(toHttpRequest({ kind: 'describe-instance' }), { method: 'GET', path: '/', template: '/' });
  assert.deepEqual(toHttpRequest({ kind: 'instance-start' }).body, { action_type: 'InstanceStart' });
  assert.deepEqual(toHttpRequest({ kind: 'send-ctrl-alt-del' }).body, { action_type: 'SendCtrlAltDel' });
  assert.deepEqual(toHttpRequest(pauseRequest()), { method: 'PATCH', path: '/vm', template: '/vm', body: { state: 'Paused' } });
  const drive = toHttpRequest(rootDriveRequest('/d/r.ext4'));
  assert.equal(drive.path, '/drives/rootfs');
  assert.equal(drive.template, '/drives/{drive_id}');
  assert.equal(toHttpRequest(preboot[4]!).path, '/network-interfaces/eth0');
});
