// Everything Hangar asks of Firecracker is one of these actions. Each maps to exactly one HTTP request, and the
// dispatch rules below (taken from Firecracker's preboot/runtime API controllers and its snapshot docs) refuse an
// action before it is sent when the VMM's state cannot accept it.
import { HangarError } from '../../errors.js';
import type {
  BootSource, Drive, EntropyDevice, InstanceState, Logger, MachineConfiguration, NetworkInterface, SnapshotCreateParams,
  SnapshotLoadParams, VmStateChange, Vsock,
} from './api-types.js';

export type FirecrackerAction =
  | { kind: 'describe-instance' }
  | { kind: 'put-logger'; body: Logger }
  | { kind: 'put-machine-config'; body: MachineConfiguration }
  | { kind: 'put-boot-source'; body: BootSource }
  | { kind: 'put-drive'; body: Drive }
  | { kind: 'put-network-interface'; body: NetworkInterface }
  | { kind: 'put-entropy'; body: EntropyDevice }
  | { kind: 'put-vsock'; body: Vsock }
  | { kind: 'instance-start' }
  | { kind: 'send-ctrl-alt-del' }
  | { kind: 'patch-vm'; state: VmStateChange }
  | { kind: 'snapshot-create'; body: SnapshotCreateParams }
  | { kind: 'snapshot-load'; body: SnapshotLoadParams };

export type ActionKind = FirecrackerAction['kind'];

export interface HttpRequestSpec {
  method: 'GET' | 'PUT' | 'PATCH';
  /** Concrete path, ids percent-encoded. */
  path: string;
  /** The definition's path template ('/drives/{drive_id}'), for contract checks. */
  template: string;
  body?: unknown;
}

export function toHttpRequest(action: FirecrackerAction): HttpRequestSpec {
  switch (action.kind) {
    case 'describe-instance': return { method: 'GET', path: '/', template: '/' };
    case 'put-logger': return { method: 'PUT', path: '/logger', template: '/logger', body: action.body };
    case 'put-machine-config': return { method: 'PUT', path: '/machine-config', template: '/machine-config', body: action.body };
    case 'put-boot-source': return { method: 'PUT', path: '/boot-source', template: '/boot-source', body: action.body };
    case 'put-drive':
      return { method: 'PUT', path: `/drives/${encodeURIComponent(action.body.drive_id)}`, template: '/drives/{drive_id}', body: action.body };
    case 'put-network-interface':
      return {
        method: 'PUT', path: `/network-interfaces/${encodeURIComponent(action.body.iface_id)}`,
        template: '/network-interfaces/{iface_id}', body: action.body,
      };
    case 'put-entropy': return { method: 'PUT', path: '/entropy', template: '/entropy', body: action.body };
    case 'put-vsock': return { method: 'PUT', path: '/vsock', template: '/vsock', body: action.body };
    case 'instance-start': return { method: 'PUT', path: '/actions', template: '/actions', body: { action_type: 'InstanceStart' } };
    case 'send-ctrl-alt-del': return { method: 'PUT', path: '/actions', template: '/actions', body: { action_type: 'SendCtrlAltDel' } };
    case 'patch-vm': return { method: 'PATCH', path: '/vm', template: '/vm', body: { state: action.state } };
    case 'snapshot-create': return { method: 'PUT', path: '/snapshot/create', template: '/snapshot/create', body: action.body };
    case 'snapshot-load': return { method: 'PUT', path: '/snapshot/load', template: '/snapshot/load', body: action.body };
  }
}

/** What Hangar knows of a Firecracker process: its state, and whether boot-specific resources were configured. */
export interface VmmModel {
  state: InstanceState;
  /** Set by machine-config, boot-source, drives, network interfaces and entropy; snapshot-load is refused after it. */
  bootConfigured: boolean;
}

export const FRESH_VMM: VmmModel = { state: 'Not started', bootConfigured: false };

const BOOT_RESOURCES: ReadonlySet<ActionKind> = new Set(['put-machine-config', 'put-boot-source', 'put-drive', 'put-network-interface', 'put-entropy', 'put-vsock']);

function notAllowed(action: FirecrackerAction, model: VmmModel, why: string): HangarError {
  return new HangarError('VMM_NOT_ALLOWED_IN_STATE', `${action.kind} not allowed in state ${model.state}: ${why}`, {
    action: action.kind, state: model.state, bootConfigured: model.bootConfigured,
  });
}

/** Null when the action may be sent now; otherwise the refusal (VMM_NOT_ALLOWED_IN_STATE). Pure. */
export function refusal(action: FirecrackerAction, model: VmmModel): HangarError | null {
  const started = model.state !== 'Not started';
  switch (action.kind) {
    case 'describe-instance':
      return null;
    case 'put-logger':
    case 'put-machine-config':
    case 'put-boot-source':
    case 'put-drive':
    case 'put-network-interface':
    case 'put-entropy':
    case 'put-vsock':
    case 'instance-start':
      return started ? notAllowed(action, model, 'pre-boot only (the microVM has started)') : null;
    case 'snapshot-load':
      if (started) return notAllowed(action, model, 'only on a fresh Firecracker process');
      if (model.bootConfigured) {
        return notAllowed(action, model, 'boot-specific resources are configured; only the logger and metrics may precede a snapshot load');
      }
      return null;
    case 'patch-vm':
    case 'send-ctrl-alt-del':
      return started ? null : notAllowed(action, model, 'only after the microVM has started');
    case 'snapshot-create':
      return model.state === 'Paused' ? null : notAllowed(action, model, 'the microVM must be Paused');
  }
}

/** The model after the VMM accepted the action. Pure. */
export function afterSuccess(action: FirecrackerAction, model: VmmModel): VmmModel {
  if (BOOT_RESOURCES.has(action.kind)) return { ...model, bootConfigured: true };
  switch (action.kind) {
    case 'instance-start': return { ...model, state: 'Running' };
    case 'patch-vm': return { ...model, state: action.state === 'Paused' ? 'Paused' : 'Running' };
    // A loaded snapshot is Paused unless resume_vm asked for it to run.
    case 'snapshot-load': return { ...model, state: action.body.resume_vm ? 'Running' : 'Paused' };
    default: return model;
  }
}
