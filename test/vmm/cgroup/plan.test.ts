import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chooseVersion, cpuQuotaUs, DEFAULT_RESOURCES, deriveLimits, hangarRoot, limitsView, parseMountinfo, parseProcCgroup, planControllerCgroup, planLimits,
} from '../../../src/vmm/cgroup/plan.js';
import { isHangarError } from '../../../src/errors.js';

const MIB = 1024 * 1024;
const vm = { vcpus: 2, memMiB: 512 };

test('limits derive from the VM: its vCPUs in cores, guest memory plus the VMM overhead, the default pids', () => {
  const l = deriveLimits(vm, DEFAULT_RESOURCES);
  assert.deepEqual(l, { cpuCores: 2, memoryBytes: (512 + 256) * MIB, swapBytes: 0, pids: 512 });
});

test("a VM's own resources override the derived limits; io applies only with a device", () => {
  const l = deriveLimits(vm, DEFAULT_RESOURCES, { cpuCores: 0.3, memMiB: 100, pids: 64, io: { writeBps: 1e6 } }, '8:0');
  assert.deepEqual(l, { cpuCores: 0.3, memoryBytes: 100 * MIB, swapBytes: 0, pids: 64, io: { device: '8:0', writeBps: 1e6 } });
  assert.equal(deriveLimits(vm, DEFAULT_RESOURCES, { io: { writeBps: 1e6 } }).io, undefined, 'no device: no io throttle');
  assert.throws(() => deriveLimits(vm, DEFAULT_RESOURCES, { cpuCores: 0 }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => deriveLimits(vm, DEFAULT_RESOURCES, { memMiB: 1.5 }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => deriveLimits(vm, DEFAULT_RESOURCES, {}, '8:0; rm'), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
});

test('cgroup v2: cpu.max, memory.max, memory.swap.max, pids.max, io.max', () => {
  const l = deriveLimits(vm, { ...DEFAULT_RESOURCES, swapMiB: 64 }, { cpuCores: 0.3, io: { readBps: 1000, writeIops: 50 } }, '259:1');
  assert.deepEqual(planLimits(2, l), [
    { controller: '', file: 'cpu.max', value: '30000 100000' },
    { controller: '', file: 'memory.max', value: String(768 * MIB) },
    { controller: '', file: 'memory.swap.max', value: String(64 * MIB) },
    { controller: '', file: 'pids.max', value: '512' },
    { controller: '', file: 'io.max', value: '259:1 rbps=1000 wiops=50' },
  ]);
  assert.ok(!planLimits(2, l, { swapAccounting: false }).some((w) => w.file === 'memory.swap.max'));
});

test('cgroup v1: cfs period then quota, the memory limit before memsw (memory + swap), pids, blkio throttles', () => {
  const l = deriveLimits(vm, { ...DEFAULT_RESOURCES, swapMiB: 64 }, { cpuCores: 1.5, io: { readBps: 1000, writeBps: 2000, readIops: 10, writeIops: 20 } }, '8:16');
  assert.deepEqual(planLimits(1, l), [
    { controller: 'cpu', file: 'cpu.cfs_period_us', value: '100000' },
    { controller: 'cpu', file: 'cpu.cfs_quota_us', value: '150000' },
    { controller: 'memory', file: 'memory.limit_in_bytes', value: String(768 * MIB) },
    { controller: 'memory', file: 'memory.memsw.limit_in_bytes', value: String((768 + 64) * MIB) },
    { controller: 'pids', file: 'pids.max', value: '512' },
    { controller: 'blkio', file: 'blkio.throttle.read_bps_device', value: '8:16 1000' },
    { controller: 'blkio', file: 'blkio.throttle.write_bps_device', value: '8:16 2000' },
    { controller: 'blkio', file: 'blkio.throttle.read_iops_device', value: '8:16 10' },
    { controller: 'blkio', file: 'blkio.throttle.write_iops_device', value: '8:16 20' },
  ]);
  assert.ok(!planLimits(1, l, { swapAccounting: false }).some((w) => w.file.includes('memsw')), 'no memsw file without swap accounting');
});

test('a tiny CPU share is still a quota the kernel takes (at least 1 ms per period)', () => {
  assert.equal(cpuQuotaUs(0.001), 1000);
  assert.equal(cpuQuotaUs(0.3), 30000);
});

test('the controller gets ten times the CPU share of a VM', () => {
  assert.deepEqual(planControllerCgroup(1), [{ controller: 'cpu', file: 'cpu.shares', value: '10240' }]);
  assert.deepEqual(planControllerCgroup(2), [{ controller: '', file: 'cpu.weight', value: '1000' }]);
});

test('the view shows the limits in MiB and cores', () => {
  assert.deepEqual(limitsView(1, 'vm-x', deriveLimits(vm, DEFAULT_RESOURCES)), { cgroupVersion: 1, cgroup: 'vm-x', cpuCores: 2, memMiB: 768, swapMiB: 0, pids: 512, io: null });
});

const HYBRID = `25 30 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
27 25 0:25 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
28 25 0:26 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct
29 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
30 25 0:28 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
31 25 0:29 / /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio
32 25 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd`;

test('detection: a hybrid host (v2 tree without controllers) uses v1; a unified host with controllers uses v2', () => {
  const mounts = parseMountinfo(HYBRID);
  assert.deepEqual(mounts.find((m) => m.mountPoint === '/sys/fs/cgroup/cpu'), { controllers: ['cpu'], mountPoint: '/sys/fs/cgroup/cpu', version: 1 });
  assert.deepEqual(mounts.find((m) => m.mountPoint === '/sys/fs/cgroup/systemd')?.controllers, []);
  assert.equal(chooseVersion(mounts, []), 1);
  const unified = parseMountinfo('26 25 0:24 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate');
  assert.equal(chooseVersion(unified, ['cpuset', 'cpu', 'io', 'memory', 'pids']), 2);
  assert.equal(chooseVersion(unified, ['cpuset']), null, 'a v2 tree without cpu/memory/pids is not usable');
  assert.equal(chooseVersion([], []), null);
});

test("/proc/PID/cgroup and Hangar's root beside the controller's own cgroup", () => {
  const own = parseProcCgroup('4:memory:/process_api/abc\n2:cpu,cpuacct:/\n0::/system.slice/hangar.service\n');
  assert.equal(own.get('memory'), '/process_api/abc');
  assert.equal(own.get('cpuacct'), '/');
  assert.equal(own.get(''), '/system.slice/hangar.service');
  assert.equal(hangarRoot('/'), '/hangar');
  assert.equal(hangarRoot('/system.slice/hangar.service'), '/system.slice/hangar.service/hangar');
  assert.equal(hangarRoot('/system.slice/hangar.service/hangar/controller'), '/system.slice/hangar.service/hangar', 'a restarted controller already in hangar/controller');
});
