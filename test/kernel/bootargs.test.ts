import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHangarError } from '../../src/errors.js';
import { GUEST_INIT_PATH } from '../../src/guest-protocol.js';
import { buildBootArgs, MAX_BOOT_ARGS_LENGTH, netmaskPrefix, type BootArgsOptions } from '../../src/kernel/bootargs.js';
import { parseConfig, withOptions } from '../../src/kernel/config.js';
import { debianConfigText, skipUnlessDebianConfigs } from '../support/debian-configs.js';
import { GOOD_CONFIG } from './fixtures.js';

const NET = { guest: '172.31.0.2', gateway: '172.31.0.1', netmask: '255.255.255.252' };
const base: BootArgsOptions = { vmm: 'firecracker', init: GUEST_INIT_PATH, net: NET };
const invalid = (field?: string) => (e: unknown): boolean =>
  isHangarError(e, 'BOOT_ARGS_INVALID') && (field === undefined || (e.details as { field?: string }).field === field);

test('the full command line, in order', () => {
  assert.equal(buildBootArgs(base),
    'console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rw init=/sbin/hangar-init ip=172.31.0.2::172.31.0.1:255.255.255.252::eth0:off:172.31.0.1');
});

test('options: PCI transport, read-only root, no root, hostname, device, extras', () => {
  assert.equal(buildBootArgs({ vmm: 'qemu-microvm' }), 'console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rw');
  assert.equal(buildBootArgs({ vmm: 'firecracker', vmmVersion: '1.13', pci: true }), 'console=ttyS0 reboot=k panic=1 root=/dev/vda rw', 'no pci=off when devices are on PCI');
  assert.equal(buildBootArgs({ vmm: 'firecracker', root: '/dev/vdb1', readOnly: true }), 'console=ttyS0 reboot=k panic=1 pci=off root=/dev/vdb1 ro');
  assert.equal(buildBootArgs({ vmm: 'firecracker', root: null, initrd: true }), 'console=ttyS0 reboot=k panic=1 pci=off');
  assert.match(buildBootArgs({ ...base, net: { ...NET, hostname: 'desk-1', device: 'eth1' } }), / ip=172\.31\.0\.2::172\.31\.0\.1:255\.255\.255\.252:desk-1:eth1:off:172\.31\.0\.1$/);
  assert.match(buildBootArgs({ ...base, extra: ['quiet', 'loglevel=4', '8250.nr_uarts=1', 'i8042.noaux', 'swiotlb=noforce'] }), / quiet loglevel=4 8250\.nr_uarts=1 i8042\.noaux swiotlb=noforce$/);
  assert.equal(buildBootArgs({ ...base, console: 'ttyS1' }).split(' ')[0], 'console=ttyS1');
});

test('addresses: dotted quads only, no smuggled separators or spaces', () => {
  const bads = [
    '172.31.0.2 init=/bin/sh', '172.31.0.2:1', '172.31.0.2,1', '172.31.0.2=1', '"172.31.0.2"', '172.31.0.2\n',
    '172.31.0', '172.31.0.256', '172.031.0.2', '::1', 'localhost', '', ' 172.31.0.2', '172.31.0.2\u0000',
  ];
  for (const guest of bads) assert.throws(() => buildBootArgs({ ...base, net: { ...NET, guest } }), invalid('net.guest'), JSON.stringify(guest));
  for (const gateway of bads) assert.throws(() => buildBootArgs({ ...base, net: { ...NET, gateway } }), invalid('net.gateway'), JSON.stringify(gateway));
  assert.throws(() => buildBootArgs({ ...base, net: { ...NET, guest: 5 as unknown as string } }), invalid('net.guest'));
});

test('netmask: contiguous, room for two hosts', () => {
  assert.equal(netmaskPrefix('255.255.255.252'), 30);
  assert.equal(netmaskPrefix('255.255.255.254'), 31);
  assert.equal(netmaskPrefix('255.0.0.0'), 8);
  for (const netmask of ['255.0.255.0', '255.255.255.253', '0.0.0.0', '255.255.255.255', '0.255.255.255', '255.255.255.0:']) {
    assert.throws(() => buildBootArgs({ ...base, net: { ...NET, netmask } }), invalid('net.netmask'), netmask);
  }
  // /31 point-to-point links have no network or broadcast address.
  assert.match(buildBootArgs({ ...base, net: { guest: '10.0.0.0', gateway: '10.0.0.1', netmask: '255.255.255.254' } }), /ip=10\.0\.0\.0::10\.0\.0\.1:/);
});

test('guest and gateway: same subnet, distinct, usable unicast addresses', () => {
  const cases: [Partial<typeof NET>, string][] = [
    [{ gateway: '172.31.0.2' }, 'net.gateway'],
    [{ gateway: '172.31.0.5' }, 'net.gateway'], // outside 172.31.0.0/30
    [{ guest: '172.31.0.3' }, 'net.guest'], // broadcast of the /30
    [{ guest: '172.31.0.0' }, 'net.guest'], // network address
    [{ guest: '127.0.0.2', gateway: '127.0.0.1' }, 'net.guest'],
    [{ guest: '0.0.0.2', gateway: '0.0.0.1' }, 'net.guest'],
    [{ guest: '224.0.0.2', gateway: '224.0.0.1' }, 'net.guest'],
  ];
  for (const [change, field] of cases) assert.throws(() => buildBootArgs({ ...base, net: { ...NET, ...change } }), invalid(field), JSON.stringify(change));
});

test('names, paths and devices are validated', () => {
  for (const device of ['eth0 x', 'eth0:1', 'ETH0', 'eth0,off', 'averyveryverylongname0', '']) {
    assert.throws(() => buildBootArgs({ ...base, net: { ...NET, device } }), invalid('net.device'), device);
  }
  for (const hostname of ['a b', 'a:b', 'a,b', 'a=b', 'A', '-a', 'a-', 'x'.repeat(64), 'a.b']) {
    assert.throws(() => buildBootArgs({ ...base, net: { ...NET, hostname } }), invalid('net.hostname'), hostname);
  }
  for (const init of ['sbin/init', '/sbin/init x', '/sbin/../bin/sh', '/sbin/./init', '/sbin/init\n', '/a"b', "/a'b", '/a=b', '/', '/sbin//init']) {
    assert.throws(() => buildBootArgs({ ...base, init }), invalid('init'), init);
  }
  for (const root of ['/dev/sda', '/dev/vda rw', 'vda', '/dev/vda0', 'LABEL=rootfs', '/dev/vda1 init=/bin/sh']) {
    assert.throws(() => buildBootArgs({ ...base, root }), invalid('root'), root);
  }
  for (const consoleDev of ['ttyS4', 'tty0', 'hvc0', 'ttyS0,115200', 'ttyS0 ']) {
    assert.throws(() => buildBootArgs({ ...base, console: consoleDev }), invalid('console'), consoleDev);
  }
  assert.throws(() => buildBootArgs({ vmm: 'cloud-hypervisor' as 'firecracker' }), invalid('vmm'));
  assert.throws(() => buildBootArgs({ vmm: 'firecracker', vmmVersion: '1.9', pci: true }), invalid('vmm'), 'no PCI before 1.13');
});

test('extra arguments: single tokens, never overriding what Hangar sets', () => {
  const bads = ['a b', 'a\tb', 'x="y"', "x='y'", 'a\\b', '-- init=/bin/sh', '--', 'é', 'a\u0007', '', '=x', 'x'.repeat(300)];
  for (const t of bads) assert.throws(() => buildBootArgs({ ...base, extra: [t] }), invalid('extra[0]'), JSON.stringify(t));
  for (const t of ['init=/bin/sh', 'ip=dhcp', 'root=/dev/vdb', 'console=tty0', 'pci=on', 'rw', 'ro', 'panic=0', 'virtio_mmio.device=4K@0xd0000000:5', 'rootfstype=xfs']) {
    assert.throws(() => buildBootArgs({ ...base, extra: ['quiet', t] }), invalid('extra[1]'), t);
  }
  // noapic breaks Firecracker's ACPI boot (1.8+), not older releases or QEMU.
  assert.throws(() => buildBootArgs({ ...base, extra: ['noapic'] }), /noapic/);
  assert.ok(buildBootArgs({ ...base, vmmVersion: '1.7', extra: ['noapic'] }).endsWith(' noapic'));
  assert.ok(buildBootArgs({ ...base, vmm: 'qemu-microvm', extra: ['noapic'] }).endsWith(' noapic'));
  // acpi=off hides PCI devices; without PCI it is allowed (the no-ACPI boot path).
  assert.throws(() => buildBootArgs({ ...base, vmmVersion: '1.13', pci: true, extra: ['acpi=off'] }), /ECAM/);
  assert.ok(buildBootArgs({ ...base, extra: ['acpi=off'] }).endsWith(' acpi=off'));
});

test('the command line leaves room for the VMM device arguments', () => {
  const many = Array.from({ length: 200 }, (_, i) => `opt${i}=1`);
  assert.throws(() => buildBootArgs({ ...base, extra: many }), (e) => invalid('extra')(e) && new RegExp(`at most ${MAX_BOOT_ARGS_LENGTH}`).test((e as Error).message));
});

test('with the kernel config: arguments the kernel cannot honour are refused', () => {
  const good = parseConfig(GOOD_CONFIG);
  assert.equal(buildBootArgs(base, good), buildBootArgs(base));
  const refuse = (cfg: typeof good, opts: BootArgsOptions, code: string): void => {
    assert.throws(() => buildBootArgs(opts, cfg), (e) => isHangarError(e, 'BOOT_ARGS_INVALID')
      && (e.details as { findings: { code: string }[] }).findings.some((f) => f.code === code), code);
  };
  refuse(withOptions(good, { IP_PNP: undefined }), base, 'KL_IP_PNP');
  refuse(withOptions(good, { VIRTIO_NET: 'm' }), { ...base, initrd: true }, 'KL_IP_PNP_NET_MODULE');
  refuse(withOptions(good, { SERIAL_8250_CONSOLE: undefined }), base, 'KL_SERIAL_CONSOLE');
  refuse(withOptions(good, { VIRTIO_BLK: 'm' }), base, 'KL_VIRTIO_BLK_MODULE');
  refuse(withOptions(good, { EXT4_FS: undefined }), base, 'KL_EXT4_FS_MISSING');
  refuse(withOptions(good, { CMDLINE_OVERRIDE: 'y' }), base, 'KL_CMDLINE_OVERRIDE');
  // Without ip= (the init configures the network), a kernel without IP_PNP is fine.
  assert.ok(buildBootArgs({ ...base, net: undefined }, withOptions(good, { IP_PNP: undefined })));
  // With an initrd that finds the root itself, root= is not requested and modules are the initrd's business.
  assert.ok(buildBootArgs({ vmm: 'firecracker', root: null, initrd: true }, withOptions(good, { VIRTIO_BLK: 'm', EXT4_FS: 'm' })));
  // Findings unrelated to arguments (e.g. no virtio-net at all) are the lint's to report, not a reason to refuse.
  assert.ok(buildBootArgs({ ...base, net: undefined }, withOptions(good, { VIRTIO_NET: undefined })));
});

test("with Debian's cloud config: ip= is refused (no IP_PNP), the rest builds with an initrd", { skip: skipUnlessDebianConfigs() }, async () => {
  const cfg = parseConfig(await debianConfigText('cloud-amd64'));
  assert.throws(() => buildBootArgs({ ...base, initrd: true }, cfg), /KL_IP_PNP/);
  assert.ok(buildBootArgs({ ...base, initrd: true, net: undefined }, cfg));
});
