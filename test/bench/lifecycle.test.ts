// The lifecycle bench's leak reader on the real /proc: processes whose argv names the bench's state dir, or whose
// pid a pidfile there records, are found; one that looks like another controller's VM (`hangar-vm-…` under
// /var/lib/hangar) is not, although `pgrep -f hangar-vm-` would have counted it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ownProcessesNow, pidFilePids, readProcesses } from '../../bench/lifecycle.js';

const skip = process.platform !== 'linux' ? 'needs Linux /proc' : false;

/** A node process that only sleeps, with these words in its argv (what a VMM's argv would hold). */
function sleeper(words: string[]): ChildProcess {
  return spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600_000)', '--', ...words], { stdio: 'ignore' });
}

test('ownProcessesNow finds the bench\'s own processes and not a foreign hangar VM', { skip }, async () => {
  const state = mkdtempSync(join(tmpdir(), 'hangar-ctl-leaktest-'));
  const kids: ChildProcess[] = [];
  try {
    const foreign = sleeper(['-name', 'hangar-vm-f0f0f0f0', '-chardev', 'socket,id=qmp,path=/var/lib/hangar/vms/vm-f0f0f0f0/qmp.sock,server=on']);
    const mine = sleeper(['-name', 'hangar-vm-0a0a0a0a', '-chardev', `socket,id=qmp,path=${state}/vms/vm-0a0a0a0a/qmp.sock,server=on`]);
    const byPidfile = sleeper(['-name', 'hangar-vm-0b0b0b0b']);
    kids.push(foreign, mine, byPidfile);
    mkdirSync(join(state, 'vms', 'vm-0b0b0b0b'), { recursive: true });
    writeFileSync(join(state, 'vms', 'vm-0b0b0b0b', 'qemu.pid'), `${byPidfile.pid}\n`);
    writeFileSync(join(state, 'vms', 'vm-0b0b0b0b', 'junk.pid'), 'not a pid\n');
    await new Promise((r) => setTimeout(r, 200)); // exec'd: argv in place

    assert.deepEqual(await pidFilePids(state), [byPidfile.pid]);
    const all = await readProcesses([]);
    assert.ok(all.some((x) => x.pid === foreign.pid && x.argv.some((a) => a.includes('hangar-vm-'))), 'the reader sees the foreign one');
    const own = (await ownProcessesNow({ dirs: [state], netns: [] })).map((x) => x.pid).sort((a, b) => a - b);
    assert.deepEqual(own, [mine.pid!, byPidfile.pid!].sort((a, b) => a - b));
  } finally {
    for (const k of kids) k.kill('SIGKILL');
    rmSync(state, { recursive: true, force: true });
  }
});
