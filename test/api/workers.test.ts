import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { consoleTrimmer } from '../../src/api/workers.js';
import { HangarError } from '../../src/errors.js';
import type { VmRecord } from '../../src/store/store.js';
import { droppedBefore } from '../../src/vmm/console-trim.js';

test('the console trimmer keeps every VM log under the cap, records it, and skips a VM that went meanwhile', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-trimmer-'));
  try {
    const big = join(dir, 'big.log');
    const small = join(dir, 'small.log');
    await writeFile(big, 'guest line\n'.repeat(300_000)); // 3.3 MB
    await writeFile(small, 'boot\n');
    const vms = [{ id: 'vm-big' }, { id: 'vm-gone' }, { id: 'vm-small' }] as VmRecord[];
    const paths: Record<string, string> = { 'vm-big': big, 'vm-small': small };
    const events: { vmId: string | null; type: string; data: Record<string, unknown> }[] = [];
    const service = {
      list: () => vms,
      consolePath: (id: string) => { const p = paths[id]; if (!p) throw new HangarError('VM_NOT_FOUND', id); return p; },
    };
    const loop = consoleTrimmer(service, { appendEvent: (vmId, type, data = {}) => { events.push({ vmId, type, data }); return { seq: 1, at: '', vmId, type, data }; } }, 1024 * 1024, 1000);
    await loop.tick();
    const after = await readFile(big, 'utf8');
    assert.ok(after.length <= 1024 * 1024);
    assert.ok(droppedBefore(after) > 2_000_000);
    assert.equal(await readFile(small, 'utf8'), 'boot\n');
    assert.deepEqual(events.map((e) => [e.vmId, e.type]), [['vm-big', 'vm.console_trimmed']]);
    await loop.tick();
    assert.equal(events.length, 1, 'under the cap now: nothing to do');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
