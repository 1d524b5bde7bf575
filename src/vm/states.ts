// The VM state machine, pure. Every state change in Hangar goes through `transition`, so an impossible change is
// an error with a stable code instead of a silently corrupted record.
import { HangarError } from '../errors.js';

export const VM_STATES = ['creating', 'booting', 'ready', 'failed', 'paused', 'stopping', 'stopped', 'destroyed'] as const;
export type VmState = (typeof VM_STATES)[number];

const NEXT: Record<VmState, readonly VmState[]> = {
  creating: ['booting', 'failed', 'destroyed'],
  booting: ['ready', 'failed', 'stopping'],
  ready: ['paused', 'stopping', 'failed'],
  paused: ['ready', 'stopping', 'failed'],
  stopping: ['stopped', 'failed'],
  stopped: ['booting', 'destroyed'],
  failed: ['booting', 'stopping', 'stopped', 'destroyed'],
  destroyed: [],
};

export function canTransition(from: VmState, to: VmState): boolean {
  return NEXT[from].includes(to);
}

export function assertTransition(id: string, from: VmState, to: VmState): void {
  if (!canTransition(from, to)) {
    throw new HangarError('VM_INVALID_STATE', `VM ${id}: ${from} → ${to} is not allowed`, { id, from, to });
  }
}

export type VmAction = 'start' | 'stop' | 'pause' | 'resume' | 'destroy';

/** States each user action is allowed in; the API answers VM_INVALID_STATE otherwise. */
export const ACTION_FROM: Record<VmAction, readonly VmState[]> = {
  start: ['stopped', 'failed'],
  stop: ['booting', 'ready', 'paused', 'failed'],
  pause: ['ready'],
  resume: ['paused'],
  destroy: ['booting', 'ready', 'paused', 'stopped', 'failed'],
};

export function assertAction(id: string, state: VmState, action: VmAction): void {
  if (!ACTION_FROM[action].includes(state)) {
    throw new HangarError('VM_INVALID_STATE', `VM ${id} is ${state}: ${action} is not allowed in state ${state}`, { id, state, action, allowed: ACTION_FROM[action] });
  }
}
