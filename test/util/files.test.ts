// The durability helpers of src/util/files.ts: the atomic write (temp file, fsync, rename, fsync of the directory)
// and the key-file policy (0600, re-checked at start; a file others can read is replaced, not chmod'ed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fsync, keyFileProblem, loadOrCreateKeyFile, writeFileAtomic, type Fsync } from '../../src/util/files.js';

function tmp(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-files-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const mode = (p: string): number => statSync(p).mode & 0o777;

/** Runs FN with a permissive umask (what a careless caller would have), restoring the old one. */
async function withUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
  const old = process.umask(mask);
  try {
    return await fn();
  } finally {
    process.umask(old);
  }
}

test('writeFileAtomic: the temp file is fsynced before the rename, the directory after it', async () => {
  const { dir, cleanup } = tmp();
  try {
    const target = join(dir, 'controller.json');
    writeFileSync(target, 'old\n');
    const seen: string[] = [];
    const spy: Fsync = {
      file: async (p) => {
        // At this point the target must still hold the old content: the new bytes are not yet published.
        seen.push(`file ${p === target ? 'target' : 'temp'} target=${readFileSync(target, 'utf8').trim()}`);
        await fsync.file(p);
      },
      dir: async (p) => {
        seen.push(`dir ${p === dir ? 'parent' : p} target=${readFileSync(target, 'utf8').trim()}`);
        await fsync.dir(p);
      },
    };
    await writeFileAtomic(target, 'new\n', { mode: 0o600, sync: spy });
    assert.deepEqual(seen, ['file temp target=old', 'dir parent target=new']);
    assert.equal(readFileSync(target, 'utf8'), 'new\n');
    assert.deepEqual(readdirSync(dir), ['controller.json'], 'no temp file is left');
  } finally {
    cleanup();
  }
});

test('writeFileAtomic: replaces the inode, so the file gets the mode asked for even over a 0644 file and a 0 umask', async () => {
  const { dir, cleanup } = tmp();
  try {
    const target = join(dir, 'token');
    writeFileSync(target, 'old\n', { mode: 0o644 });
    chmodSync(target, 0o644);
    const before = statSync(target).ino;
    await withUmask(0, () => writeFileAtomic(target, 'new\n', { mode: 0o600 }));
    assert.equal(mode(target), 0o600);
    assert.notEqual(statSync(target).ino, before, 'a new file was renamed over the old one');
  } finally {
    cleanup();
  }
});

test('writeFileAtomic: a failure before the rename leaves the old file whole and no temp file behind', async () => {
  const { dir, cleanup } = tmp();
  try {
    const target = join(dir, 'viewer.key');
    writeFileSync(target, 'old\n');
    const failing: Fsync = { file: async () => { throw new Error('EIO'); }, dir: fsync.dir };
    await assert.rejects(writeFileAtomic(target, 'new\n', { mode: 0o600, sync: failing }), /EIO/);
    assert.equal(readFileSync(target, 'utf8'), 'old\n');
    assert.deepEqual(readdirSync(dir), ['viewer.key']);
  } finally {
    cleanup();
  }
});

test('keyFileProblem: only a plain file of ours that nobody else can read passes', () => {
  assert.equal(keyFileProblem({ mode: 0o100600, uid: 0, isFile: true }, 0), null);
  assert.equal(keyFileProblem({ mode: 0o100400, uid: 0, isFile: true }, 0), null);
  assert.match(keyFileProblem({ mode: 0o100640, uid: 0, isFile: true }, 0)!, /mode 0640/);
  assert.match(keyFileProblem({ mode: 0o100604, uid: 0, isFile: true }, 0)!, /mode 0604/);
  assert.match(keyFileProblem({ mode: 0o100600, uid: 1000, isFile: true }, 0)!, /owned by uid 1000/);
  assert.match(keyFileProblem({ mode: 0o120777, uid: 0, isFile: false }, 0)!, /not a regular file/);
});

const keyOpts = (replaced: string[]): Parameters<typeof loadOrCreateKeyFile>[1] => ({
  create: () => 'k'.repeat(40), valid: (t) => t.length >= 32, onReplace: (r) => replaced.push(r),
});

test('loadOrCreateKeyFile: created 0600 under a 0 umask, kept as it is at the next start', async () => {
  const { dir, cleanup } = tmp();
  try {
    const path = join(dir, 'sub', 'token');
    const replaced: string[] = [];
    const first = await withUmask(0, () => loadOrCreateKeyFile(path, keyOpts(replaced)));
    assert.equal(mode(path), 0o600);
    assert.equal(mode(join(dir, 'sub')), 0o700);
    writeFileSync(path, 'a'.repeat(40) + '\n'); // an operator-set key is kept
    assert.equal(await loadOrCreateKeyFile(path, keyOpts(replaced)), 'a'.repeat(40));
    assert.equal(first, 'k'.repeat(40));
    assert.deepEqual(replaced, []);
  } finally {
    cleanup();
  }
});

test('loadOrCreateKeyFile: a group- or world-readable key is replaced by a new 0600 key (not chmod\'ed and kept)', async () => {
  const { dir, cleanup } = tmp();
  try {
    for (const m of [0o644, 0o640, 0o604]) {
      const path = join(dir, `key-${m.toString(8)}`);
      writeFileSync(path, 'leaked'.repeat(8) + '\n');
      chmodSync(path, m);
      const replaced: string[] = [];
      const key = await loadOrCreateKeyFile(path, keyOpts(replaced));
      assert.notEqual(key, 'leaked'.repeat(8), 'the possibly disclosed key is no longer used');
      assert.equal(readFileSync(path, 'utf8').trim(), key);
      assert.equal(mode(path), 0o600);
      assert.equal(replaced.length, 1);
      assert.match(replaced[0]!, /lets others read it/);
    }
  } finally {
    cleanup();
  }
});

test('loadOrCreateKeyFile: a symlink is replaced by a file of its own (its target is left alone); a short key is renewed', async () => {
  const { dir, cleanup } = tmp();
  try {
    const target = join(dir, 'elsewhere');
    writeFileSync(target, 'x'.repeat(40) + '\n', { mode: 0o600 });
    const path = join(dir, 'viewer.key');
    symlinkSync(target, path);
    const replaced: string[] = [];
    await loadOrCreateKeyFile(path, keyOpts(replaced));
    assert.equal(readFileSync(target, 'utf8'), 'x'.repeat(40) + '\n');
    assert.ok(statSync(path).isFile() && mode(path) === 0o600);
    writeFileSync(join(dir, 'short'), 'abc\n', { mode: 0o600 });
    await loadOrCreateKeyFile(join(dir, 'short'), keyOpts(replaced));
    assert.equal(readFileSync(join(dir, 'short'), 'utf8').trim(), 'k'.repeat(40));
    assert.deepEqual(replaced, ['not a regular file', 'its content is not a valid key']);
    assert.ok(existsSync(target));
  } finally {
    cleanup();
  }
});
