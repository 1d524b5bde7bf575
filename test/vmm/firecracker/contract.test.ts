// Every request Hangar can produce, for a range of realistic inputs and for each verified target version, checked
// against Firecracker's published API definition of that version: the path and method exist, the body validates
// (required fields, types, enums, minimum/maximum, no unknown fields), and the dispatch rules agree with the
// definition's own "Pre-boot only" / "Post-boot only" notes.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { afterSuccess, FRESH_VMM, refusal, toHttpRequest } from '../../../src/vmm/firecracker/actions.js';
import type { ActionKind, FirecrackerAction } from '../../../src/vmm/firecracker/actions.js';
import {
  ACTION_TYPES, CACHE_TYPES, HUGE_PAGES, INSTANCE_INFO_REQUIRED, INSTANCE_STATES, IO_ENGINES, LOG_LEVELS, MEM_BACKEND_TYPES,
  SNAPSHOT_TYPES, VM_STATES,
} from '../../../src/vmm/firecracker/api-types.js';
import {
  bootSequence, loggerRequest, machineConfigRequest, networkInterfaceRequest, pauseRequest, resumeRequest, rootDriveRequest,
  snapshotCreateRequest, snapshotLoadRequest, vsockRequest,
} from '../../../src/vmm/firecracker/requests.js';
import { FIELD_SINCE, hasField, VERIFIED_API_VERSIONS } from '../../../src/vmm/firecracker/version.js';
import type { ApiVersion, VersionedField } from '../../../src/vmm/firecracker/version.js';
import { SHARED, skipUnlessShared } from '../../support/env.js';
import { findOperation, loadFirecrackerApi, validate, validateRequest } from '../../support/swagger.js';
import type { Schema, SwaggerDoc } from '../../support/swagger.js';

const skip = skipUnlessShared();
const fixtures = (): string => join(SHARED!, 'fixtures', 'firecracker');
const docs = new Map<ApiVersion, SwaggerDoc>();
const docFor = (v: ApiVersion): SwaggerDoc => {
  if (!docs.has(v)) docs.set(v, loadFirecrackerApi(fixtures(), v));
  return docs.get(v)!;
};
const def = (doc: SwaggerDoc, name: string): Schema => {
  const d = doc.definitions[name];
  assert.ok(d, `definition ${name} missing in ${doc.info.version}`);
  return d;
};

/** Every action kind must be produced below; the Record makes the compiler list them all. */
const ALL_KINDS: Record<ActionKind, true> = {
  'describe-instance': true, 'put-logger': true, 'put-machine-config': true, 'put-boot-source': true, 'put-drive': true,
  'put-network-interface': true, 'put-entropy': true, 'put-vsock': true, 'instance-start': true, 'send-ctrl-alt-del': true, 'patch-vm': true, 'snapshot-create': true,
  'snapshot-load': true,
};

/** Everything Hangar can send to a given version, over a realistic spread of inputs. */
function everyRequest(api: ApiVersion): FirecrackerAction[] {
  const out: FirecrackerAction[] = [{ kind: 'describe-instance' }, pauseRequest(), resumeRequest(), { kind: 'send-ctrl-alt-del' }];
  const paths = { kernelPath: '/var/cache/hangar/images/deb/vmlinux', rootfsPath: '/var/lib/hangar/vms/a/rootfs.ext4', logPath: '/var/lib/hangar/vms/a/firecracker.log' };
  const nets = [undefined, { tap: 'hg-a1b2c3', mac: '02:fc:00:00:00:01' }, { tap: 'tap0', mac: 'AA:BB:CC:DD:EE:FE' }];
  const bootArgs = ['', 'console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rw init=/sbin/hangar-init', `console=ttyS0 ${'x'.repeat(1400)}`];
  for (const vcpus of [1, 2, 3, 32]) {
    for (const memMiB of [128, 512, 4096, 65536]) {
      for (const [i, net] of nets.entries()) {
        out.push(...bootSequence({ vcpus, memMiB, bootArgs: bootArgs[i % bootArgs.length]!, ...(net ? { net } : {}) }, paths, api));
      }
    }
  }
  for (const level of LOG_LEVELS) out.push(loggerRequest('/run/fc.log', level));
  // hangar-agent's vsock device, direct and jailed (the boot sequence adds it when the paths name a socket).
  out.push(vsockRequest('/var/lib/hangar/vms/a/vsock.sock'), vsockRequest('/vsock.sock'));
  out.push(...bootSequence({ vcpus: 2, memMiB: 512, bootArgs: 'console=ttyS0' }, { ...paths, vsockPath: '/vsock.sock' }, api));
  out.push(machineConfigRequest({ vcpus: 2, memMiB: 1024, smt: true, trackDirtyPages: true, hugePages2M: true }));
  out.push(rootDriveRequest('/d/ro.ext4', { readOnly: true }));
  if (hasField(api, 'network-interface.mtu')) {
    for (const mtu of [68, 1500, 9000, 65535]) out.push(networkInterfaceRequest({ tap: 'tap0', mac: '02:00:00:00:00:02' }, api, { mtu }));
  }
  for (const type of SNAPSHOT_TYPES) out.push(snapshotCreateRequest({ snapshotPath: '/s/vm.snap', memFilePath: '/s/vm.mem', type }));
  for (const resume of [undefined, false, true]) {
    for (const trackDirtyPages of [undefined, false, true]) {
      const base = { snapshotPath: '/s/vm.snap', memFilePath: '/s/vm.mem', ...(resume === undefined ? {} : { resume }), ...(trackDirtyPages === undefined ? {} : { trackDirtyPages }) };
      out.push(snapshotLoadRequest(base, api));
      if (hasField(api, 'snapshot-load.network_overrides')) {
        out.push(snapshotLoadRequest({ ...base, networkOverrides: [{ tap: 'hg-new0' }, { ifaceId: 'eth1', tap: 'hg-new1' }] }, api));
      }
      if (hasField(api, 'snapshot-load.clock_realtime')) out.push(snapshotLoadRequest({ ...base, clockRealtime: true }, api));
      if (hasField(api, 'snapshot-load.vsock_override')) out.push(snapshotLoadRequest({ ...base, vsockPath: '/var/lib/hangar/vms/b/vsock.sock' }, api));
    }
  }
  return out;
}

for (const api of VERIFIED_API_VERSIONS) {
  test(`API ${api}: every request Hangar produces is valid against the published definition`, { skip }, () => {
    const doc = docFor(api);
    assert.equal(doc.info.version, api);
    const requests = everyRequest(api);
    const kinds = new Set<string>();
    for (const action of requests) {
      const req = toHttpRequest(action);
      const found = findOperation(doc, req.method, req.path);
      assert.ok(found, `${req.method} ${req.path} does not exist in ${api}`);
      assert.equal(found.template, req.template, `${action.kind} template`);
      assert.deepEqual(validateRequest(doc, req.method, req.path, req.body), [], `${action.kind} ${JSON.stringify(req.body)}`);
      kinds.add(action.kind);
    }
    assert.deepEqual([...kinds].sort(), Object.keys(ALL_KINDS).sort(), 'every action kind exercised');
    assert.ok(requests.length > 100, `${requests.length} requests checked`);
  });

  test(`API ${api}: the enums and required fields Hangar relies on match the definition`, { skip }, () => {
    const doc = docFor(api);
    const enumOf = (defName: string, prop: string): unknown[] => {
      const p = def(doc, defName).properties?.[prop];
      const s = p?.$ref ? def(doc, p.$ref.split('/').pop()!) : p;
      assert.ok(s?.enum, `${defName}.${prop} has an enum`);
      return s.enum;
    };
    const info = def(doc, 'InstanceInfo');
    assert.deepEqual([...(info.required ?? [])].sort(), [...INSTANCE_INFO_REQUIRED].sort());
    assert.deepEqual(enumOf('InstanceInfo', 'state'), [...INSTANCE_STATES]);
    const getRoot = findOperation(doc, 'GET', '/')!.op;
    assert.equal(getRoot.responses?.['200']?.schema?.$ref, '#/definitions/InstanceInfo');
    assert.equal(def(doc, 'Error').properties?.fault_message?.type, 'string');
    assert.deepEqual(enumOf('Logger', 'level'), [...LOG_LEVELS]);
    assert.deepEqual(enumOf('Vm', 'state'), [...VM_STATES]);
    assert.deepEqual(enumOf('SnapshotCreateParams', 'snapshot_type'), [...SNAPSHOT_TYPES]);
    assert.deepEqual(enumOf('MemoryBackend', 'backend_type'), [...MEM_BACKEND_TYPES]);
    assert.deepEqual(enumOf('MachineConfiguration', 'huge_pages'), [...HUGE_PAGES]);
    assert.deepEqual(enumOf('Drive', 'cache_type'), [...CACHE_TYPES]);
    assert.deepEqual(enumOf('Drive', 'io_engine'), [...IO_ENGINES]);
    for (const a of ACTION_TYPES) assert.ok(enumOf('InstanceActionInfo', 'action_type').includes(a), a);
  });

  test(`API ${api}: dispatch rules agree with the definition's pre-boot/post-boot notes`, { skip }, () => {
    const doc = docFor(api);
    let checked = 0;
    for (const action of everyRequest(api)) {
      const req = toHttpRequest(action);
      const summary = (findOperation(doc, req.method, req.path)!.op as { summary?: string }).summary ?? '';
      if (/Pre-boot only/i.test(summary)) {
        assert.ok(refusal(action, afterSuccess({ kind: 'instance-start' }, FRESH_VMM)), `${action.kind} is pre-boot only in ${api}`);
        checked++;
      }
      if (/Post-boot only/i.test(summary)) {
        assert.ok(refusal(action, FRESH_VMM), `${action.kind} is post-boot only in ${api}`);
        checked++;
      }
    }
    assert.ok(checked > 10);
  });
}

test('version gates match the definitions: a gated field exists exactly from its version on', { skip }, () => {
  const where: Record<VersionedField, [string, string]> = {
    'snapshot-load.track_dirty_pages': ['SnapshotLoadParams', 'track_dirty_pages'],
    'snapshot-load.network_overrides': ['SnapshotLoadParams', 'network_overrides'],
    'snapshot-load.clock_realtime': ['SnapshotLoadParams', 'clock_realtime'],
    'snapshot-load.vsock_override': ['SnapshotLoadParams', 'vsock_override'],
    'network-interface.mtu': ['NetworkInterface', 'mtu'],
  };
  for (const field of Object.keys(FIELD_SINCE) as VersionedField[]) {
    const [d, p] = where[field];
    for (const api of VERIFIED_API_VERSIONS) {
      const present = def(docFor(api), d).properties?.[p] !== undefined;
      assert.equal(present, hasField(api, field), `${field} in ${api}`);
    }
  }
  // The fields Hangar sends unconditionally exist in all three.
  for (const api of VERIFIED_API_VERSIONS) {
    const load = def(docFor(api), 'SnapshotLoadParams').properties!;
    assert.ok(load.mem_backend && load.enable_diff_snapshots && load.resume_vm, api);
  }
});

test('the validator is not vacuous: it rejects what Firecracker would reject', { skip }, () => {
  const v191 = docFor('1.9.1');
  const v1161 = docFor('1.16.1');
  const bad = (doc: SwaggerDoc, method: string, path: string, body: unknown, expect: RegExp): void => {
    const errors = validateRequest(doc, method, path, body);
    assert.ok(errors.some((e) => expect.test(e)), `${method} ${path} ${JSON.stringify(body)} → ${JSON.stringify(errors)}`);
  };
  bad(v191, 'PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 256, cpus: 2 }, /unknown field cpus/);
  bad(v191, 'PUT', '/machine-config', { vcpu_count: 0, mem_size_mib: 256 }, /below the minimum 1/);
  bad(v191, 'PUT', '/machine-config', { vcpu_count: 33, mem_size_mib: 256 }, /above the maximum 32/);
  bad(v191, 'PUT', '/machine-config', { vcpu_count: 2 }, /missing required field mem_size_mib/);
  bad(v191, 'PUT', '/machine-config', { vcpu_count: '2', mem_size_mib: 256 }, /expected integer/);
  bad(v191, 'PATCH', '/vm', { state: 'Stopped' }, /not one of/);
  bad(v191, 'PUT', '/actions', { action_type: 'Reboot' }, /not one of/);
  bad(v191, 'PUT', '/snapshot/load', { snapshot_path: '/s', mem_backend: { backend_type: 'File', backend_path: '/m' }, track_dirty_pages: true }, /unknown field track_dirty_pages/);
  bad(v191, 'PUT', '/network-interfaces/eth0', { iface_id: 'eth0', host_dev_name: 't', mtu: 1500 }, /unknown field mtu/);
  bad(v1161, 'PUT', '/network-interfaces/eth0', { iface_id: 'eth0', host_dev_name: 't', mtu: 60 }, /below the minimum 68/);
  bad(v1161, 'PUT', '/snapshot/load', { snapshot_path: '/s', mem_backend: { backend_type: 'Disk', backend_path: '/m' } }, /mem_backend.backend_type/);
  bad(v191, 'PUT', '/serial', { serial_out_path: '/x' }, /no such operation/);
  bad(v191, 'DELETE', '/drives/rootfs', undefined, /no such operation/);
  assert.deepEqual(validate(v1161, { $ref: '#/definitions/MmdsContentsObject' }, { anything: { goes: 1 } }), [], 'free-form MMDS document');
});
