import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { NEWEST_FIRECRACKER } from '../../src/kernel/rules.js';
import { GOOD_CONFIG } from '../kernel/fixtures.js';

async function hangar(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => { out += s; }, err: (s) => { err += s; } });
  return { code, out, err };
}

async function withConfigs<T>(fn: (good: string, bad: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-cli-kernel-'));
  try {
    const good = join(dir, 'good.config');
    const bad = join(dir, 'bad.config');
    await writeFile(good, GOOD_CONFIG);
    await writeFile(bad, GOOD_CONFIG.replace('CONFIG_VIRTIO_BLK=y', 'CONFIG_VIRTIO_BLK=m').replace('CONFIG_PRINTK=y', '# CONFIG_PRINTK is not set'));
    return await fn(good, bad);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('kernel lint --json: the exact report shape, exit 0 when clean', () => withConfigs(async (good) => {
  const r = await hangar(['kernel', 'lint', good, '--json']);
  assert.equal(r.code, 0);
  const report = JSON.parse(r.out) as Record<string, unknown>;
  assert.deepEqual(Object.keys(report), ['ok', 'kernel', 'target', 'findings']);
  assert.deepEqual(report.kernel, { version: '6.1.99', source: 'config', format: 'config', pvh: null });
  assert.deepEqual(report.target, { vmm: 'firecracker', vmmVersion: NEWEST_FIRECRACKER, initrd: false, ipBoot: true, acpi: true, pci: false });
  assert.equal(report.ok, true);
  for (const f of report.findings as Record<string, unknown>[]) assert.deepEqual(Object.keys(f), ['code', 'severity', 'option', 'message', 'fix']);
}));

test('kernel lint: exit 1 with errors, the table lists errors first', () => withConfigs(async (_good, bad) => {
  const r = await hangar(['kernel', 'lint', bad]);
  assert.equal(r.code, 1);
  const rows = r.out.split('\n').filter((l) => /^(error|warning|info) /.test(l));
  assert.deepEqual(rows.map((l) => l.split(/\s+/)[0]), ['error', 'warning', 'info', 'info']);
  assert.match(rows[0]!, /KL_VIRTIO_BLK_MODULE\s+CONFIG_VIRTIO_BLK/);
  assert.match(r.out, /Fixes:\n {2}KL_VIRTIO_BLK_MODULE: Set CONFIG_VIRTIO_BLK=y/);
  assert.match(r.out, /FAIL: 1 error\(s\), 1 warning\(s\), 2 note\(s\)\n$/);
  // The same kernel passes with an initrd that loads virtio_blk.
  assert.equal((await hangar(['kernel', 'lint', bad, '--initrd'])).code, 0);
}));

test('kernel lint: target flags reach the report', () => withConfigs(async (good) => {
  const q = JSON.parse((await hangar(['kernel', 'lint', good, '--vmm', 'qemu-microvm', '--acpi', '--no-ip', '--json'])).out);
  assert.deepEqual(q.target, { vmm: 'qemu-microvm', vmmVersion: null, initrd: false, ipBoot: false, acpi: true, pci: false });
  assert.equal(q.ok, false, 'the baseline kernel has no ACPI, so microvm acpi=on finds no device');
  const f = JSON.parse((await hangar(['kernel', 'lint', good, '--vmm-version', '1.9', '--json'])).out);
  assert.equal(f.target.vmmVersion, '1.9');
}));

test('kernel lint: exit 2 for unreadable input and bad arguments', () => withConfigs(async (good) => {
  const missing = await hangar(['kernel', 'lint', '/nonexistent/vmlinux', '--json']);
  assert.equal(missing.code, 2);
  assert.equal(JSON.parse(missing.out).error.code, 'KERNEL_UNREADABLE');
  const human = await hangar(['kernel', 'lint', '/nonexistent/vmlinux']);
  assert.equal(human.code, 2);
  assert.match(human.err, /KERNEL_UNREADABLE/);
  for (const args of [[], [good, good], [good, '--vmm', 'xen'], [good, '--vmm-version', 'latest'], [good, '--vmm', 'qemu-microvm', '--vmm-version', '1.9'], [good, '--acpi'], [good, '--frobnicate']]) {
    const r = await hangar(['kernel', 'lint', ...args]);
    assert.equal(r.code, 2, JSON.stringify(args));
  }
}));
