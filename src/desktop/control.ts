// Who may drive a VM's desktop when several people watch it: one viewer at a time is in control (its input reaches
// the VM), the others watch (the bridge drops their input). The first viewer with a control token takes control
// when nobody has it; others ask (request), the one in control (or the API) hands over (grant), or gives it up
// (release) to the first one waiting. A view-only viewer never gets control. Pure bookkeeping, one per DesktopDeps.
import { HangarError } from '../errors.js';
import type { TokenScope } from './token.js';

export interface ControlState {
  controller: string | null;
  pending: string[];
  viewers: { id: string; scope: TokenScope }[];
}

interface VmControl {
  viewers: Map<string, TokenScope>;
  controller: string | null;
  pending: string[];
}

export type ControlListener = (vmId: string, state: ControlState) => void;

export class ControlRegistry {
  private readonly vms = new Map<string, VmControl>();
  private readonly listeners = new Set<ControlListener>();

  onChange(l: ControlListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private vm(vmId: string): VmControl {
    let v = this.vms.get(vmId);
    if (!v) this.vms.set(vmId, (v = { viewers: new Map(), controller: null, pending: [] }));
    return v;
  }

  private changed(vmId: string): void {
    const s = this.state(vmId);
    for (const l of this.listeners) l(vmId, s);
  }

  state(vmId: string): ControlState {
    const v = this.vms.get(vmId);
    if (!v) return { controller: null, pending: [], viewers: [] };
    return { controller: v.controller, pending: [...v.pending], viewers: [...v.viewers].map(([id, scope]) => ({ id, scope })) };
  }

  has(vmId: string, viewer: string): boolean {
    return this.vms.get(vmId)?.viewers.has(viewer) ?? false;
  }

  inControl(vmId: string, viewer: string): boolean {
    return this.vms.get(vmId)?.controller === viewer;
  }

  /** A viewer connected; returns its leave(). A control-scope viewer takes control when nobody has it. */
  join(vmId: string, viewer: string, scope: TokenScope): () => void {
    const v = this.vm(vmId);
    if (v.viewers.has(viewer)) throw new HangarError('CONFLICT', `viewer ${viewer} is already connected to ${vmId}`, { vmId, viewer });
    v.viewers.set(viewer, scope);
    if (scope === 'control' && v.controller === null) v.controller = viewer;
    this.changed(vmId);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      v.viewers.delete(viewer);
      v.pending = v.pending.filter((p) => p !== viewer);
      if (v.controller === viewer) v.controller = v.pending.shift() ?? null;
      if (v.viewers.size === 0) this.vms.delete(vmId);
      this.changed(vmId);
    };
  }

  private live(vmId: string, viewer: string): VmControl {
    const v = this.vms.get(vmId);
    if (!v || !v.viewers.has(viewer)) throw new HangarError('NOT_FOUND', `no viewer ${viewer} is connected to ${vmId}`, { vmId, viewer });
    return v;
  }

  /** A viewer asks for control: granted at once when nobody has it, else it waits (first come, first served). */
  request(vmId: string, viewer: string): 'granted' | 'pending' {
    const v = this.live(vmId, viewer);
    if (v.viewers.get(viewer) !== 'control') throw new HangarError('TOKEN_SCOPE', 'a view-only viewer cannot take control', { scope: 'view', wanted: 'control' });
    if (v.controller === viewer) return 'granted';
    if (v.controller === null) { v.controller = viewer; this.changed(vmId); return 'granted'; }
    if (!v.pending.includes(viewer)) { v.pending.push(viewer); this.changed(vmId); }
    return 'pending';
  }

  /** Hands control to `to`; `from` is the viewer in control, or 'api' (the bearer may always decide). */
  grant(vmId: string, from: string | 'api', to: string): void {
    const v = this.live(vmId, to);
    if (from !== 'api' && v.controller !== from) {
      throw new HangarError('VIEWER_NOT_IN_CONTROL', 'only the viewer in control (or the API) can hand control over', { vmId, viewer: from });
    }
    if (v.viewers.get(to) !== 'control') throw new HangarError('TOKEN_SCOPE', 'a view-only viewer cannot take control', { scope: 'view', wanted: 'control' });
    v.controller = to;
    v.pending = v.pending.filter((p) => p !== to);
    this.changed(vmId);
  }

  /** The viewer in control gives it up; the first one waiting gets it. */
  release(vmId: string, viewer: string): void {
    const v = this.live(vmId, viewer);
    if (v.controller !== viewer) throw new HangarError('VIEWER_NOT_IN_CONTROL', 'this viewer is not in control', { vmId, viewer });
    v.controller = v.pending.shift() ?? null;
    this.changed(vmId);
  }
}

const registries = new WeakMap<object, ControlRegistry>();
/** One registry per DesktopDeps object, so routes and bridge built from it agree. */
export function controlFor(deps: object): ControlRegistry {
  let r = registries.get(deps);
  if (!r) registries.set(deps, (r = new ControlRegistry()));
  return r;
}
