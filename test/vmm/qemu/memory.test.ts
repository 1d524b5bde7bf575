// Guest RAM files (src/vmm/qemu/memory.ts): a VM's own is sparse, of the guest's size and private; a snapshot's
// copy keeps the holes (a mostly untouched guest costs little disk) and is hashed from its source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyRamFile, DEFAULT_MEMORY_DIR, makeSharedMemory, sharedMemoryPath } from '../../../src/vmm/qemu/memory.js';

test('where a VM\'s RAM file lives: the default tmpfs directory, another, or none (anonymous RAM)', () => {
  assert.equal(sharedMemoryPath(undefined, 'vm-1'), join(DEFAULT_MEMORY_DIR, 'vm-1.ram'));
  assert.equal(sharedMemoryPath('/run/ram', 'vm-1'), '/run/ram/vm-1.ram');
  assert.equal(sharedMemoryPath(null, 'vm-1'), null);
});

test('a RAM file is sparse, of the guest size, 0600; its copy keeps the holes and hashes like the source', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-ram-'));
  try {
    const ram = join(dir, 'sub', 'vm-1.ram');
    await makeSharedMemory(ram, 64, null);
    const st = await stat(ram);
    assert.equal(st.size, 64 * 1024 * 1024);
    assert.equal(st.mode & 0o777, 0o600);
    assert.ok(st.blocks * 512 < 1024 * 1024, 'sparse');
    const fh = await open(ram, 'r+');
    await fh.write(Buffer.alloc(8192, 7), 0, 8192, 5 * 1024 * 1024); // pages the guest touched
    await fh.close();
    const copy = join(dir, 'memory.ram');
    const info = await copyRamFile(ram, copy, null);
    const cst = await stat(copy);
    assert.equal(cst.size, st.size);
    assert.ok(cst.blocks * 512 < 1024 * 1024, 'the copy is sparse too');
    assert.equal(cst.mode & 0o777, 0o600);
    assert.deepEqual(info, { size: st.size, sha256: createHash('sha256').update(await readFile(copy)).digest('hex') });
    await makeSharedMemory(ram, 64, null); // a stale file of an earlier run is replaced, not reused
    assert.ok((await stat(ram)).blocks * 512 < 8192);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
