// The VMMs this controller runs or has adopted, with the undo of each one's running resources (its network), and
// the watch that turns an exit nobody asked for into a failed VM with its evidence.
import type { StateStore } from '../store/store.js';
import type { UndoStack } from '../util/steps.js';
import type { VmmHandle } from '../vmm/driver.js';
import type { ProcessExit } from '../vmm/types.js';
import { HangarError } from '../errors.js';

export interface LiveVm {
  handle: VmmHandle;
  /** Set when Hangar itself stops the VMM, so the exit is not taken for a crash. */
  stopping: boolean;
  undo: UndoStack;
}

export const CONSOLE_TAIL_LINES = 60;

/** Why a VMM the kernel killed in its cgroup is gone, with the limit it hit. */
export function oomMessage(limits: { memMiB: number } | null): string {
  return `the VMM went over its memory limit${limits ? ` of ${limits.memMiB} MiB (guest memory plus the VMM's own)` : ''} and the kernel killed it inside its cgroup: give the VM more memory headroom (resources.memMiB)`;
}

export class LiveVms {
  private readonly live = new Map<string, LiveVm>();

  constructor(
    private readonly store: StateStore,
    private readonly consoleTail: (id: string) => Promise<string>,
    private readonly log: (msg: string, data?: Record<string, unknown>) => void,
  ) {}

  get(id: string): LiveVm | undefined {
    return this.live.get(id);
  }

  must(id: string): LiveVm {
    const l = this.live.get(id);
    if (!l) throw new HangarError('VM_INVALID_STATE', `VM ${id} has no running VMM attached`, { id });
    return l;
  }

  has(id: string): boolean {
    return this.live.has(id);
  }

  ids(): string[] {
    return [...this.live.keys()];
  }

  /** Takes a running VMM under watch: an exit that Hangar did not ask for makes the VM failed, with how it ended. */
  add(id: string, handle: VmmHandle, undo: UndoStack): void {
    const entry: LiveVm = { handle, stopping: false, undo };
    this.live.set(id, entry);
    void handle.exited.then(async (exit) => {
      const l = this.live.get(id);
      if (!l || l !== entry || l.stopping) return;
      this.live.delete(id);
      await l.undo.unwind(); // its network (the VMM is already gone)
      const cur = this.store.getVm(id);
      if (!cur || !['ready', 'paused', 'booting'].includes(cur.state)) return;
      const consoleTail = await this.consoleTail(id);
      const limits = l.handle.limits ?? null;
      const lastError = exit.oomKilled
        ? { code: 'VMM_OUT_OF_MEMORY', message: oomMessage(limits), details: { exit, limits, consoleTail } }
        : { code: 'VMM_CRASHED', message: `the VMM exited unexpectedly (${exit.signal ?? `code ${exit.code}`}, by ${exit.by})`, details: { exit, consoleTail } };
      this.store.setState(id, 'failed', { pid: null, exit, lastError }, { exit });
      this.log('vm crashed', { id, exit });
    });
  }

  /**
   * Hangar stops the VMM itself: marks it so the exit is not a crash, stops it, and undoes its running resources.
   * Returns how it ended (null when nothing ran).
   */
  async stop(id: string, graceMs: number): Promise<ProcessExit | null> {
    const l = this.live.get(id);
    if (!l) return null;
    l.stopping = true;
    const exit = await l.handle.stop({ graceMs });
    this.live.delete(id);
    await l.undo.unwind();
    return exit;
  }

  /** Controller shutdown: stop watching, leave VMMs running (adopted at the next start). */
  releaseAll(): void {
    for (const l of this.live.values()) l.handle.release?.();
    this.live.clear();
  }
}
