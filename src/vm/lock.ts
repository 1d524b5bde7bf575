// The per-VM lock: operations on one VM run one after another, never interleaved; different VMs run in parallel.
export class KeyedLock {
  private readonly chains = new Map<string, Promise<unknown>>();

  /** Runs fn after everything queued on key before it (whether that succeeded or not). */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.chains.set(key, tail);
    void tail.then(() => { if (this.chains.get(key) === tail) this.chains.delete(key); });
    return next;
  }
}
