// The jailer's cgroup options from the per-VM limits, checked against the FAKE jailer's reading of them (which
// follows the real jailer's rules: --cgroup-version, --parent-cgroup, --cgroup <controller>.<param>=<value>).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHangarError } from '../../../src/errors.js';
import { DEFAULT_RESOURCES } from '../../../src/vmm/cgroup/plan.js';
import type { Confinement } from '../../../src/vmm/confine.js';
import { jailerCgroupFor } from '../../../src/vmm/firecracker/driver.js';
import { jailerArgv, jailerCgroupArgs } from '../../../src/vmm/firecracker/launch.js';
import type { MachineSpec } from '../../../src/vmm/types.js';
import { fakeJailerCgroups } from '../../support/fake-firecracker.js';

const spec: MachineSpec = {
  id: 'vm-7', kernelPath: '/img/vmlinux', rootfsPath: '/var/lib/hangar/vms/vm-7/rootfs.ext4', bootArgs: 'console=ttyS0',
  vcpus: 2, memMiB: 256, consoleLogPath: '/var/lib/hangar/vms/vm-7/console.log', runDir: '/var/lib/hangar/vms/vm-7', resources: { cpuCores: 0.5 },
};
const jailer = { binary: '/usr/bin/jailer', uid: 123, gid: 100, chrootBaseDir: '/srv/jailer' };

function confine(version: 1 | 2): Confinement {
  return {
    user: null, resources: DEFAULT_RESOURCES,
    cgroups: { version, roots: new Map(), swapAccounting: true, relRoot: 'system.slice/hangar.service/hangar' },
  };
}

/** The jailer's own options (before `--`). */
const own = (argv: string[]): string[] => argv.slice(0, argv.indexOf('--'));

for (const version of [1, 2] as const) {
  test(`cgroup v${version}: the VM's limits reach the jailer as options it accepts`, () => {
    const cg = jailerCgroupFor(confine(version), spec)!;
    const argv = jailerArgv({ ...jailer, id: 'vm-7', execFile: '/usr/bin/firecracker', cgroup: cg }, ['--api-sock', '/firecracker.sock']);
    const got = fakeJailerCgroups(own(argv), 'firecracker');
    assert.equal(got.version, version);
    assert.equal(got.parent, 'system.slice/hangar.service/hangar');
    const m = new Map(got.settings.map((s) => [s.file, s.value]));
    if (version === 2) {
      assert.equal(m.get('cpu.max'), '50000 100000');
      assert.equal(m.get('memory.max'), String((256 + 256) * 1024 * 1024));
      assert.equal(m.get('pids.max'), '512');
    } else {
      assert.equal(m.get('cpu.cfs_quota_us'), '50000');
      assert.equal(m.get('cpu.cfs_period_us'), '100000');
      assert.equal(m.get('memory.limit_in_bytes'), String(512 * 1024 * 1024));
      assert.equal(m.get('pids.max'), '512');
    }
  });
}

test('no cgroups configured: no cgroup options', () => {
  assert.equal(jailerCgroupFor({ ...confine(1), cgroups: null }, spec), undefined);
  const argv = jailerArgv({ ...jailer, id: 'vm-7', execFile: '/usr/bin/firecracker' }, []);
  assert.ok(!argv.some((a) => a.startsWith('--cgroup') || a === '--parent-cgroup'));
});

test('what the jailer would refuse is refused before it runs', () => {
  const bad = (c: Parameters<typeof jailerCgroupArgs>[0]): boolean => {
    assert.throws(() => jailerCgroupArgs(c), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
    return true;
  };
  bad({ version: 2, parent: '/abs', writes: [] });
  bad({ version: 2, parent: 'a/../b', writes: [] });
  bad({ version: 2, parent: 'hangar', writes: [{ file: 'cgroup.procs', value: '1' }] });
  bad({ version: 2, parent: 'hangar', writes: [{ file: 'memory.max', value: '1\n--uid=0' }] });
  assert.throws(() => fakeJailerCgroups(['--cgroup-version', '2', '--cgroup', 'blkio.weight=10'], 'firecracker'), /no controller blkio/, 'the fake checks names per version');
});
