// After a failed test: clone namespaces the manager could not remove (named after the test's VM side, so nothing
// else can match), with whatever still runs in them killed by pid first.
import { listCloneNetns } from '../../src/net/clone.js';
import type { NetConfig } from '../../src/net/config.js';
import { run } from '../../src/util/exec.js';

export async function removeLeftoverClones(cfg: NetConfig): Promise<string[]> {
  const left = await listCloneNetns(cfg);
  for (const ns of left) {
    if (!ns.startsWith('hgt-')) throw new Error(`refusing to remove ${ns}: not a test namespace`);
    const pids = (await run('ip', ['netns', 'pids', ns], { allowFailure: true, timeoutMs: 10_000 })).stdout.split(/\s+/).filter(Boolean).map(Number);
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    await run('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 10_000 });
  }
  return left;
}
