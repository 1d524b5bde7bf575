// The doctor's causal ordering across layers: the root cause first, its consequences marked, same-code merging.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeByCode, orderDoctorFindings, topCause, type DoctorFinding } from '../../src/doctor/model.js';
import { orderByCause } from '../../src/doctor/causality.js';
import type { Severity } from '../../src/findings.js';

const f = (code: string, severity: Severity = 'error', option: string | null = null, check = 'x'): DoctorFinding =>
  ({ code, severity, option, message: code, fix: '', evidence: [{ text: code }], check });
const order = (fs: DoctorFinding[]): string[] => orderDoctorFindings(fs).map((x) => `${x.code}${x.causedBy ? `<${x.causedBy.join('|')}` : ''}`);

test('a TAP left down explains the unanswered ARP, the failed pings and the unreachable VNC port', () => {
  assert.deepEqual(order([f('DOC_VNC_UNREACHABLE'), f('DOC_ICMP_FAILED'), f('DOC_ARP_UNANSWERED'), f('DOC_TAP_DOWN'), f('CON_READY', 'info')]), [
    'DOC_TAP_DOWN', 'DOC_ARP_UNANSWERED<DOC_TAP_DOWN', 'DOC_ICMP_FAILED<DOC_ARP_UNANSWERED', 'DOC_VNC_UNREACHABLE<DOC_ICMP_FAILED', 'CON_READY',
  ]);
});

test('a kernel lint finding explains the console finding about the same option, which explains the network symptoms', () => {
  const r = order([f('DOC_ARP_UNANSWERED'), f('CON_NO_NET_DEVICE', 'error', 'CONFIG_VIRTIO_NET'), f('KL_VIRTIO_NET_MISSING', 'error', 'CONFIG_VIRTIO_NET'), f('DOC_VM_FAILED')]);
  assert.equal(r[0], 'KL_VIRTIO_NET_MISSING');
  assert.ok(r.includes('CON_NO_NET_DEVICE<KL_VIRTIO_NET_MISSING'));
  assert.ok(r.includes('DOC_ARP_UNANSWERED<CON_NO_NET_DEVICE'));
  // An unrelated option does not explain it.
  assert.equal(order([f('CON_NO_NET_DEVICE', 'error', 'CONFIG_VIRTIO_NET'), f('KL_TMPFS', 'warning', 'CONFIG_TMPFS')])[0], 'CON_NO_NET_DEVICE');
});

test('a failed VM is the symptom of any other error, never of a bystander (leftovers)', () => {
  assert.deepEqual(order([f('DOC_VM_FAILED'), f('DOC_LEFTOVER_TAP', 'warning'), f('DOC_BOOTARGS_ROOT')]), ['DOC_BOOTARGS_ROOT', 'DOC_VM_FAILED<DOC_BOOTARGS_ROOT', 'DOC_LEFTOVER_TAP']);
  assert.deepEqual(order([f('DOC_VM_FAILED'), f('DOC_LEFTOVER_TAP', 'warning')]), ['DOC_VM_FAILED', 'DOC_LEFTOVER_TAP']);
});

test('a cause is as serious as what it explains; the guest re-addressing itself beats the console mismatch it causes', () => {
  const r = orderDoctorFindings([f('DOC_ICMP_FAILED'), f('DOC_IMAGE_NET_OVERRIDE', 'warning'), f('DOC_GUEST_READDRESSED')]);
  assert.deepEqual(r.map((x) => [x.code, x.severity]), [['DOC_IMAGE_NET_OVERRIDE', 'error'], ['DOC_GUEST_READDRESSED', 'error'], ['DOC_ICMP_FAILED', 'error']]);
  assert.equal(topCause(r)?.code, 'DOC_IMAGE_NET_OVERRIDE');
});

test('roots of the same severity: host before image before VM configuration before symptoms', () => {
  assert.deepEqual(order([f('DOC_VNC_REFUSED'), f('DOC_DUPLICATE_MAC'), f('KL_VIRTIO_BLK_MODULE'), f('DOC_TUN_MISSING')]).slice(0, 3), ['DOC_TUN_MISSING', 'KL_VIRTIO_BLK_MODULE', 'DOC_DUPLICATE_MAC']);
  // Kernel lint findings keep the lint's rule order (block device before network).
  assert.deepEqual(order([f('KL_VIRTIO_NET_MODULE'), f('KL_IP_PNP_NET_MODULE'), f('KL_VIRTIO_BLK_MODULE')]), ['KL_VIRTIO_BLK_MODULE', 'KL_VIRTIO_NET_MODULE', 'KL_IP_PNP_NET_MODULE']);
});

test('no most likely cause when only information is left', () => {
  const r = orderDoctorFindings([f('CON_READY', 'info'), f('DOC_ACCEL_TCG', 'info')]);
  assert.equal(topCause(r), null);
});

test('findings with the same code (one lint rule for both VMMs) merge their evidence and checks', () => {
  const a = { ...f('KL_VIRTIO_NET_MISSING', 'error', 'CONFIG_VIRTIO_NET', 'image.lint'), evidence: [{ text: 'firecracker: …' }] };
  const b = { ...f('KL_VIRTIO_NET_MISSING', 'error', 'CONFIG_VIRTIO_NET', 'image.lint'), evidence: [{ text: 'qemu-microvm: …' }] };
  const c = { ...f('KL_VIRTIO_NET_MISSING', 'warning', 'CONFIG_VIRTIO_NET', 'other'), evidence: [{ text: 'qemu-microvm: …' }] };
  const m = mergeByCode([a, b, c]);
  assert.equal(m.length, 1);
  assert.deepEqual(m[0]!.evidence.map((e) => e.text), ['firecracker: …', 'qemu-microvm: …']);
  assert.equal(m[0]!.check, 'image.lint, other');
  assert.equal(m[0]!.severity, 'error');
});

test('the generic ordering ignores cycles instead of looping, and passes through the console model unchanged', () => {
  const model = { explains: (c: string) => (c === 'A' ? ['B'] : c === 'B' ? ['A'] : []), rank: () => 0 };
  const r = orderByCause([f('A'), f('B')], model);
  assert.deepEqual(r.map((x) => x.causedBy), [undefined, undefined]);
});
