// The VM state machine and the action union, pure. Every state change in Hangar goes through `assertTransition`
// (the store calls it), and every user or controller action on a VM through `checkAction`, so "not allowed in
// state X" comes from this one table instead of from each action's code.
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

/**
 * What an action sees: the stored state, except that a stopped (or failed) VM whose memory is saved on disk is
 * 'hibernated' — start and resume restore it instead of booting.
 */
export type ActionState = VmState | 'hibernated';

export function actionState(vm: { state: VmState; hibernation: unknown }): ActionState {
  return vm.hibernation && (vm.state === 'stopped' || vm.state === 'failed') ? 'hibernated' : vm.state;
}

/**
 * Every action on a VM, with the states it is allowed in (`from`) and those in which it is already done and
 * answers the VM as it is (`done`: starting a running VM is a success, not an error).
 */
export const ACTIONS = {
  /** Boot from the VM's own disk (stopped, failed), or restore its saved memory (hibernated). */
  start: { from: ['stopped', 'failed', 'hibernated'], done: ['ready', 'booting'] },
  /** Stop the VMM (a boot in progress is aborted); disk, addresses and record stay. */
  stop: { from: ['booting', 'ready', 'paused', 'failed'], done: ['stopped'] },
  /** Freeze the guest's vCPUs; memory stays in the VMM. */
  pause: { from: ['ready'], done: ['paused'] },
  /** Run a paused guest on, or restore a hibernated one. */
  resume: { from: ['paused', 'hibernated'], done: ['ready'] },
  /** Save memory and devices to the run directory, then stop the VMM. */
  hibernate: { from: ['ready', 'paused'], done: ['hibernated'] },
  /** A golden snapshot's capture: pause, save, copy the disk, run on. */
  capture: { from: ['ready'], done: [] },
  /** Stop whatever runs and remove the record, its disk, its addresses. */
  destroy: { from: ['booting', 'ready', 'paused', 'stopped', 'failed', 'hibernated'], done: [] },
} as const satisfies Record<string, { from: readonly ActionState[]; done: readonly ActionState[] }>;

export type VmAction = keyof typeof ACTIONS;
export const VM_ACTIONS = Object.keys(ACTIONS) as VmAction[];

/** The user-facing lifecycle actions of POST /v1/vms/:id/{action}. */
export type LifecycleAction = 'start' | 'stop' | 'pause' | 'resume' | 'hibernate';

/** States each action is allowed in (derived from ACTIONS, for messages and tests). */
export const ACTION_FROM = VM_ACTIONS.reduce((acc, a) => {
  acc[a] = ACTIONS[a].from;
  return acc;
}, {} as Record<VmAction, readonly ActionState[]>);

/** 'run' when the action applies, 'done' when the VM already is where it would take it; else VM_INVALID_STATE. */
export function checkAction(id: string, state: ActionState, action: VmAction): 'run' | 'done' {
  const a: { from: readonly ActionState[]; done: readonly ActionState[] } = ACTIONS[action];
  if (a.from.includes(state)) return 'run';
  if (a.done.includes(state)) return 'done';
  throw new HangarError('VM_INVALID_STATE', `VM ${id} is ${state}: ${action} is not allowed in state ${state}`, { id, state, action, allowed: [...a.from] });
}
