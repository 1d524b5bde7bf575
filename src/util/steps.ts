// Work that changes the host is a list of named steps. Each step may return its undo; on failure the undos of
// the steps that completed run once, in reverse order. The same stack serves teardown of a healthy resource.
import type { Progress } from './progress.js';

export type Undo = () => Promise<void> | void;

export class UndoStack {
  private readonly undos: { name: string; undo: Undo }[] = [];

  push(name: string, undo: Undo): void {
    this.undos.push({ name, undo });
  }

  get size(): number {
    return this.undos.length;
  }

  /** The names of the undos, oldest first (tests, logs). */
  get names(): string[] {
    return this.undos.map((u) => u.name);
  }

  /** Forgets every undo without running it (another stack that holds them runs them). */
  clear(): void {
    this.undos.length = 0;
  }

  /** Runs every undo once, newest first. Errors are collected, not thrown, so one failure does not leak the rest. */
  async unwind(): Promise<{ name: string; error: unknown }[]> {
    const errors: { name: string; error: unknown }[] = [];
    while (this.undos.length) {
      const { name, undo } = this.undos.pop()!;
      try {
        await undo();
      } catch (error) {
        errors.push({ name, error });
      }
    }
    return errors;
  }
}

export interface Step<C> {
  name: string;
  run: (ctx: C) => Promise<Undo | void> | Undo | void;
  /**
   * The undo runs only if a later step fails; on success it is not handed back with the resource's teardown
   * stack (a VM's disk copy: a failed boot removes it, a stop of the running VM keeps it).
   */
  rollbackOnly?: boolean;
}

export interface StepTiming {
  name: string;
  ms: number;
}

/**
 * Runs steps in order. On a throw, unwinds the undos of completed steps in reverse and rethrows the original
 * error (with rollback failures attached as `rollbackErrors`). On success the undos are handed back on `stack`
 * so the caller can tear the resource down later.
 */
export async function runSteps<C>(steps: readonly Step<C>[], ctx: C, progress?: Progress): Promise<{ stack: UndoStack; timings: StepTiming[] }> {
  const timings: StepTiming[] = [];
  const stack = new UndoStack();
  // Every undo, in order, for a failure; `stack` gets only those the resource keeps.
  const all = new UndoStack();
  for (const step of steps) {
    const t0 = performance.now();
    progress?.phase(step.name);
    try {
      const undo = await step.run(ctx);
      if (undo) {
        all.push(step.name, undo);
        if (!step.rollbackOnly) stack.push(step.name, undo);
      }
    } catch (error) {
      progress?.fail(step.name, error);
      const rollbackErrors = await all.unwind();
      if (rollbackErrors.length && error instanceof Error) {
        Object.assign(error, { rollbackErrors });
      }
      throw error;
    }
    const ms = performance.now() - t0;
    timings.push({ name: step.name, ms });
    progress?.done(step.name, ms);
  }
  return { stack, timings };
}
