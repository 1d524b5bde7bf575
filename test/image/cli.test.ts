import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';

function io(): { out: string[]; err: string[]; io: { out: (s: string) => void; err: (s: string) => void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (s) => out.push(s), err: (s) => err.push(s) } };
}

test('image ls on an empty images directory; --json gives an array', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-cli-img-'));
  const saved = process.env.HANGAR_IMAGES_DIR;
  process.env.HANGAR_IMAGES_DIR = dir;
  try {
    const a = io();
    assert.equal(await main(['image', 'ls'], a.io), 0);
    assert.match(a.out.join(''), /no images/);
    const b = io();
    assert.equal(await main(['image', 'ls', '--json'], b.io), 0);
    assert.deepEqual(JSON.parse(b.out.join('')), []);
  } finally {
    if (saved === undefined) delete process.env.HANGAR_IMAGES_DIR;
    else process.env.HANGAR_IMAGES_DIR = saved;
    await rm(dir, { recursive: true, force: true });
  }
});

test('image build rejects an unknown profile with a stable code and exit 2', async () => {
  const a = io();
  assert.equal(await main(['image', 'build', '--profile', 'gaming', '--json'], a.io), 2);
  assert.equal(JSON.parse(a.out.join('')).error.code, 'INVALID_ARGUMENT');
  const b = io();
  assert.equal(await main(['image', 'build', '--bogus'], b.io), 2);
  assert.match(b.err.join(''), /INVALID_ARGUMENT/);
});
