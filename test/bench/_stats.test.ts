// What a bench counts as its own: ownedProcesses over a machine that also runs the main job (a controller and its
// desktop VM in the namespaces `hangar` / `hangar-host`) and other tests' VMs. Only the bench's own may count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { median, ownedProcesses, percentile, type ProcFact } from '../../bench/_stats.js';

const STATE = '/tmp/hangar-ctl-Ab12Cd';
const DIRECT = '/tmp/hangar-direct-Zz99Yy';
const qemu = (id: string, dir: string): string[] => [
  'qemu-system-x86_64', '-name', `hangar-${id}`, '-M', 'microvm', '-accel', 'tcg',
  '-chardev', `file,id=con0,path=${dir}/console.log,append=on`, '-drive', `id=root,file=${dir}/rootfs.ext4,format=raw,if=none`,
  '-chardev', `socket,id=qmp,path=${dir}/qmp.sock,server=on,wait=off`,
];
const p = (pid: number, argv: string[], extra: Partial<ProcFact> = {}): ProcFact => ({ pid, argv, cwd: '/', netns: null, ...extra });

// The machine: the main job (controller + desktop-1 in its own state dir and namespaces), another test's VM, a VM
// whose state dir merely shares a prefix with the bench's, and what the bench itself left behind.
const machine: ProcFact[] = [
  p(100, ['node', '/work/main/bin/hangar.js', 'up', '--foreground'], { cwd: '/work/main' }),
  p(101, qemu('vm-1a2b3c4d', '/var/lib/hangar/vms/vm-1a2b3c4d')),
  p(102, ['node', '-e', 'relay', '10.242.0.2', '5900']),
  p(103, qemu('vm-0f0f0f0f', '/tmp/hangar-ctl-Other1/vms/vm-0f0f0f0f')),
  p(104, qemu('vm-prefix00', `${STATE}x/vms/vm-prefix00`)),
  p(105, ['bash'], { cwd: `${STATE}x` }),
  p(200, qemu('vm-deadbeef', `${STATE}/vms/vm-deadbeef`)),
  p(201, qemu('direct-0', DIRECT)),
  p(202, ['node', '-e', 'relay', '10.217.0.5', '5900'], { netns: 'hgt-host-abc123' }),
  p(203, ['sh'], { cwd: `${STATE}/vms/vm-x` }),
  p(204, ['qemu-system-x86_64', '-name', 'hangar-vm-nopaths']),
  p(300, ['node', 'dist/bench/index.js', 'lifecycle'], { cwd: '/work/wt', netns: null }),
];
const own = { dirs: [STATE, `${DIRECT}/`], netns: ['hgt-host-abc123', 'hgt-vms-abc123'], pidFilePids: [204], exclude: [300] };

test('only the bench\'s own processes count: argv or cwd under its dirs, its pidfiles, its namespaces', () => {
  assert.deepEqual(ownedProcesses(machine, own).map((x) => x.pid), [200, 201, 202, 203, 204]);
});

test('the main job running beside (hangar-vm-* in /var/lib/hangar, namespaces hangar/hangar-host) is 0 leaks', () => {
  const beside = machine.filter((x) => x.pid < 200 || x.pid === 300);
  assert.equal(beside.filter((x) => x.argv.some((a) => a.includes('hangar-vm-'))).length, 3, 'what `pgrep -f hangar-vm-` used to count');
  assert.deepEqual(ownedProcesses(beside, own), []);
  assert.deepEqual(ownedProcesses(machine, { dirs: [], netns: [] }), [], 'a bench that made nothing owns nothing');
});

test('the bench itself is never its own leak, even when its argv names its state dir', () => {
  const self = p(300, ['node', 'bench', `${STATE}/state.db`]);
  assert.deepEqual(ownedProcesses([self], own), []);
  assert.deepEqual(ownedProcesses([self], { ...own, exclude: [] }).map((x) => x.pid), [300]);
});

test('percentiles and median', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(percentile([1, 2, 3, 4], 100), 4);
  assert.ok(Number.isNaN(percentile([], 50)));
});
