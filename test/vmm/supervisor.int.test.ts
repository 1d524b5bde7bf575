// The supervisor against real processes: spawn, pidfile, SIGTERM→SIGKILL escalation, exit records, crash
// detection, and adoption that refuses a pid which is not (or no longer) ours.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isHangarError } from '../../src/errors.js';
import { which } from '../../src/util/exec.js';
import { ADOPTED_POLL_MS, SupervisedProcess } from '../../src/vmm/supervisor.js';
import { pidAlive } from '../support/env.js';

const BASH = await which('bash');
const skip = !BASH ? 'bash is needed' : process.platform !== 'linux' ? 'needs Linux /proc' : false;

/** Pids whose process group is pgid. */
function groupMembers(pgid: number): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return Number(f.slice(f.lastIndexOf(')') + 2).split(' ')[2]) === pgid;
    } catch { return false; }
  });
}

/** A temp dir and a list of processes that are SIGKILLed (by pid) if a test leaves them behind. */
async function withDir(fn: (dir: string, track: (p: SupervisedProcess) => SupervisedProcess) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-sv-'));
  const started: SupervisedProcess[] = [];
  try {
    await fn(dir, (p) => { started.push(p); return p; });
  } finally {
    for (const p of started) if (pidAlive(p.pid) && groupMembers(p.pid).length) { try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ } }
    await rm(dir, { recursive: true, force: true });
  }
}

/** bash that ignores SIGTERM (so does its sleep child) and carries a unique marker in its argv. */
function stubborn(dir: string, marker: string): { command: string; args: string[]; logPath: string; pidFile: string } {
  return { command: BASH!, args: ['-c', 'trap "" TERM; sleep 100; :', marker], logPath: join(dir, `${marker}.log`), pidFile: join(dir, `${marker}.pid`) };
}

test('spawn writes the pidfile and log; SIGTERM stops it; the exit is recorded as hangar\'s', { skip }, () => withDir(async (dir, track) => {
  const pidFile = join(dir, 'p.pid');
  const log = join(dir, 'p.log');
  const p = track(await SupervisedProcess.spawn({ command: BASH!, args: ['-c', 'echo started; exec sleep 100'], logPath: log, pidFile }));
  assert.equal((await readFile(pidFile, 'utf8')).trim(), String(p.pid));
  assert.deepEqual(groupMembers(p.pid), [p.pid], 'leads its own process group');
  const exit = await p.terminate({ graceMs: 3000 });
  assert.equal(exit.by, 'hangar');
  assert.equal(exit.signal, 'SIGTERM');
  assert.ok(!Number.isNaN(Date.parse(exit.at)));
  assert.deepEqual(p.signalsSent, ['SIGTERM']);
  assert.ok(!existsSync(pidFile), 'pidfile removed');
  assert.match(await readFile(log, 'utf8'), /started/);
}));

test('a process that ignores SIGTERM is SIGKILLed after the grace period, with its whole group', { skip }, () => withDir(async (dir, track) => {
  const p = track(await SupervisedProcess.spawn({ command: BASH!, args: ['-c', 'trap "" TERM; sleep 100'], logPath: join(dir, 'l'), pidFile: join(dir, 'p.pid') }));
  await new Promise((r) => setTimeout(r, 300)); // let bash install the trap and start sleep
  const members = groupMembers(p.pid);
  const t0 = Date.now();
  const exit = await p.terminate({ graceMs: 700 });
  const took = Date.now() - t0;
  assert.deepEqual(p.signalsSent, ['SIGTERM', 'SIGKILL']);
  assert.equal(exit.signal, 'SIGKILL');
  assert.equal(exit.by, 'hangar');
  assert.ok(took >= 650 && took < 3000, `escalation took ${took} ms`);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(members.filter(pidAlive), [], 'every member of the group is gone');
}));

test('exit code and cause are recorded; an outside kill is detected at once as unknown', { skip }, () => withDir(async (dir, track) => {
  const a = track(await SupervisedProcess.spawn({ command: BASH!, args: ['-c', 'exit 3'], logPath: join(dir, 'a'), pidFile: join(dir, 'a.pid') }));
  assert.deepEqual({ ...(await a.exited), at: '' }, { code: 3, signal: null, by: 'unknown', at: '' });

  const b = track(await SupervisedProcess.spawn({ command: BASH!, args: ['-c', 'sleep 0.2'], logPath: join(dir, 'b'), pidFile: join(dir, 'b.pid') }));
  b.noteCause('guest'); // what the QEMU driver does on a guest-initiated SHUTDOWN event
  assert.equal((await b.exited).by, 'guest');

  const c = track(await SupervisedProcess.spawn({ command: BASH!, args: ['-c', 'exec sleep 100'], logPath: join(dir, 'c'), pidFile: join(dir, 'c.pid') }));
  const t0 = Date.now();
  process.kill(c.pid, 'SIGKILL');
  const e = await c.exited;
  assert.ok(Date.now() - t0 < 2000, 'crash detected within 2 s');
  assert.equal(e.signal, 'SIGKILL');
  assert.equal(e.by, 'unknown');
}));

test('a missing binary, or a pidfile that cannot be written, is VMM_START_FAILED and leaves no process', { skip }, () => withDir(async (dir) => {
  await assert.rejects(SupervisedProcess.spawn({ command: join(dir, 'no-such-vmm'), args: [], logPath: join(dir, 'l'), pidFile: join(dir, 'p') }),
    (e: unknown) => isHangarError(e, 'VMM_START_FAILED') && e.details.errno === 'ENOENT');
  assert.ok(!existsSync(join(dir, 'p')));
  const marker = `hangar-sv-nopid-${randomBytes(4).toString('hex')}`;
  await assert.rejects(SupervisedProcess.spawn({ command: BASH!, args: ['-c', 'sleep 100; :', marker], logPath: join(dir, 'l'), pidFile: join(dir, 'missing-dir', 'p') }),
    (e: unknown) => isHangarError(e, 'VMM_START_FAILED') && /pidfile/.test(e.message));
  const left = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try { return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(marker); } catch { return false; }
  });
  assert.deepEqual(left, [], 'the started process was stopped');
}));

test('adopt after a controller "restart": verifies, polls liveness, detects a crash within 2 s, stops the group', { skip }, () => withDir(async (dir, track) => {
  const marker = `hangar-sv-${randomBytes(4).toString('hex')}`;
  const spec = stubborn(dir, marker);
  const first = track(await SupervisedProcess.spawn(spec));
  first.release(); // the controller goes away; the process keeps running
  await new Promise((r) => setTimeout(r, 300));
  const identity = { binary: BASH!, markers: [marker] };

  const adopted = await SupervisedProcess.adopt(spec.pidFile, identity);
  assert.ok(adopted);
  assert.equal(adopted.pid, first.pid);
  assert.equal(adopted.adopted, true);
  const exit = await adopted.terminate({ graceMs: 500 });
  assert.deepEqual(adopted.signalsSent, ['SIGTERM', 'SIGKILL']);
  assert.equal(exit.by, 'hangar');
  assert.equal(exit.code, null, 'a non-child has no exit status to read');
  assert.ok(!pidAlive(first.pid));

  // An adopted process killed from outside is noticed by polling.
  const spec2 = stubborn(dir, `${marker}-2`);
  const second = track(await SupervisedProcess.spawn(spec2));
  second.release();
  const watched = await SupervisedProcess.adopt(spec2.pidFile, { binary: BASH!, markers: [`${marker}-2`] });
  assert.ok(watched);
  const t0 = Date.now();
  process.kill(-second.pid, 'SIGKILL');
  const e = await watched.exited;
  const took = Date.now() - t0;
  assert.ok(took < 2000 && took <= ADOPTED_POLL_MS + 500, `crash of an adopted process noticed after ${took} ms`);
  assert.equal(e.by, 'unknown');
}));

test('adopt refuses a pid that is not ours: another program, another VM, a dead pid, a garbled pidfile', { skip }, () => withDir(async (dir, track) => {
  const pidFile = join(dir, 'vm.pid');
  const identity = { binary: BASH!, markers: ['hangar-sv-mine'] };

  // The pid was recycled by an unrelated program (this test runner itself).
  await writeFile(pidFile, `${process.pid}\n`);
  assert.equal(await SupervisedProcess.adopt(pidFile, identity), null);

  // Same binary, but another "VM" (different markers): must not be adopted, and is left running.
  const other = track(await SupervisedProcess.spawn(stubborn(dir, 'hangar-sv-other')));
  await writeFile(pidFile, `${other.pid}\n`);
  assert.equal(await SupervisedProcess.adopt(pidFile, identity), null);
  assert.ok(other.alive && pidAlive(other.pid), 'never signalled');

  // Gone.
  const dead = track(await SupervisedProcess.spawn({ command: BASH!, args: ['-c', 'exit 0'], logPath: join(dir, 'd'), pidFile: join(dir, 'd.pid') }));
  await dead.exited;
  await writeFile(pidFile, `${dead.pid}\n`);
  assert.equal(await SupervisedProcess.adopt(pidFile, identity), null);

  for (const junk of ['', 'abc', '1', '-5', `${other.pid} extra`]) {
    await writeFile(pidFile, junk);
    assert.equal(await SupervisedProcess.adopt(pidFile, identity), null, JSON.stringify(junk));
  }
  await rm(pidFile);
  assert.equal(await SupervisedProcess.adopt(pidFile, identity), null);
  await other.terminate({ graceMs: 200 });
}));
