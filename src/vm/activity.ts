// When each VM was last used (API action, viewer traffic) and which VMs have a viewer attached: the idleness clock
// of the hibernator. In memory: activity before this controller started is unknown and counts from its start.
export class Activity {
  private readonly last = new Map<string, number>();
  private readonly holds = new Map<string, number>();
  private readonly startedAt: number;

  constructor(private readonly now: () => number = Date.now) {
    this.startedAt = now();
  }

  touch(id: string): void {
    this.last.set(id, this.now());
  }

  /** A viewer is attached: the VM is never idle until the returned release is called (idempotent). */
  hold(id: string): () => void {
    this.holds.set(id, (this.holds.get(id) ?? 0) + 1);
    this.touch(id);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.holds.get(id) ?? 1) - 1;
      if (n > 0) this.holds.set(id, n);
      else this.holds.delete(id);
      this.touch(id);
    };
  }

  held(id: string): boolean {
    return (this.holds.get(id) ?? 0) > 0;
  }

  /** Whether id has had no activity and no viewer for afterS seconds. */
  idle(id: string, afterS: number, now = this.now()): boolean {
    return !this.held(id) && now - (this.last.get(id) ?? this.startedAt) >= afterS * 1000;
  }

  forget(id: string): void {
    this.last.delete(id);
    this.holds.delete(id);
  }
}
