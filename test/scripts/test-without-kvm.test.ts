// scripts/test-without-kvm.sh: the plan over a fixture /dev (dry run), a host with nothing to hide (the command
// just runs), and — as root — the real thing in a private mount namespace, hiding a harmless entry (/dev/full)
// instead of kvm, since this is the mechanism and a host may have no /dev/kvm to hide.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, which } from '../../src/util/exec.js';
import { ROOT } from '../support/env.js';

const SCRIPT = join(ROOT, 'scripts', 'test-without-kvm.sh');

function withFakeDev(fn: (dir: string, dev: string) => Promise<void>, withKvm = true): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-nokvm-'));
  const dev = join(dir, 'dev');
  mkdirSync(join(dev, 'net'), { recursive: true });
  writeFileSync(join(dev, 'null'), '');
  if (withKvm) writeFileSync(join(dev, 'kvm'), '');
  symlinkSync('/proc/self/fd', join(dev, 'fd'));
  return fn(dir, dev).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('--dry-run prints the plan: every /dev entry but kvm bound back, kvm hidden; the command does not run', () => withFakeDev(async (dir, dev) => {
  const marker = join(dir, 'ran');
  const r = await run('bash', [SCRIPT, '--dry-run', 'touch', marker], { env: { ...process.env, HANGAR_DEV_DIR: dev } });
  assert.deepEqual(r.stdout.trim().split('\n'), [
    'unshare --mount --propagation private', `mount --rbind ${dev} REALDEV`, `mount -t tmpfs ${dev}`,
    `link ${dev}/fd -> /proc/self/fd`, `hide ${dev}/kvm`, `rbind ${dev}/net`, `bind ${dev}/null`, `run touch ${marker}`,
  ]);
  assert.ok(!existsSync(marker));
}));

test('with no kvm to hide the command just runs, and says so', () => withFakeDev(async (dir, dev) => {
  const marker = join(dir, 'ran');
  const r = await run('bash', [SCRIPT, 'touch', marker], { env: { ...process.env, HANGAR_DEV_DIR: dev } });
  assert.match(r.stderr, /there is no .*\/kvm on this host: nothing to hide/);
  assert.ok(existsSync(marker));
}, false));

test('a HANGAR_HIDE_DEV_ENTRY that is not one entry name is refused (exit 2)', async () => {
  const r = await run('bash', [SCRIPT, '--dry-run', 'true'], { env: { ...process.env, HANGAR_HIDE_DEV_ENTRY: '../etc' }, allowFailure: true });
  assert.equal(r.code, 2);
});

const skipReal = process.getuid?.() !== 0 ? 'needs root (a private mount namespace)'
  : !(await which('unshare')) ? 'needs unshare (util-linux)'
    : !existsSync('/dev/full') ? 'no /dev/full to hide on this host' : false;

test('for real, in a private mount namespace: the entry is gone inside, everything else works, the host keeps it', { skip: skipReal }, async () => {
  const check = [
    'test ! -e /dev/full', 'echo x > /dev/null', 'test -d /dev/pts', 'test -e /dev/ptmx',
    'if [ -d /dev/shm ]; then f=/dev/shm/hangar-nokvm-$$; : > "$f" && rm "$f"; fi', 'ls -A /dev',
  ].join(' && ');
  const before = readdirSync('/dev');
  const r = await run('bash', [SCRIPT, 'sh', '-c', check], { env: { ...process.env, HANGAR_HIDE_DEV_ENTRY: 'full' }, timeoutMs: 30_000 });
  const after = readdirSync('/dev');
  assert.match(r.stderr, /\/dev\/full hidden in this mount namespace/);
  const inside = new Set(r.stdout.trim().split('\n'));
  // /dev may change meanwhile (another job's loop devices): what was there before and after must be inside.
  const stable = before.filter((n) => n !== 'full' && after.includes(n));
  assert.deepEqual(stable.filter((n) => !inside.has(n)), [], 'every other /dev entry is there');
  assert.ok([...inside].every((n) => n !== 'full' && (before.includes(n) || after.includes(n))), 'nothing else appears');
  assert.ok(existsSync('/dev/full'), 'the host still has it');
  assert.ok(!readdirSync(tmpdir()).some((n) => n.startsWith('hangar-realdev.')), 'no mount point left behind');
});
