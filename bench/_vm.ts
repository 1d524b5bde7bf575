// What the VM benches share (bench/snapshot, bench/sessions): a process's memory from smaps_rollup, and the time
// from create to ready of one VM (destroyed after).
import { readFile } from 'node:fs/promises';
import type { TestController } from '../test/support/controller.js';

export interface Mem { pss: number; rss: number; shared: number; private: number }

/** smaps_rollup of a process, KiB: PSS shares each page between the processes mapping it. */
export async function memoryKiB(pid: number): Promise<Mem> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const f = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { pss: f('Pss'), rss: f('Rss'), shared: f('Shared_Clean') + f('Shared_Dirty'), private: f('Private_Clean') + f('Private_Dirty') };
}

/** Create → ready of one VM in ms; the VM is destroyed after. */
export async function timed(t: TestController, req: Parameters<TestController['manager']['create']>[0]): Promise<number> {
  const t0 = performance.now();
  const { vm, ready } = await t.manager.create(req);
  await ready;
  const ms = performance.now() - t0;
  await t.manager.destroy(vm.id);
  return ms;
}
