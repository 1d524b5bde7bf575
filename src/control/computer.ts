// The computer-use service: one RFB connection per VM, opened on demand by the first action and dropped after
// idleMs without one, through which actions run one at a time per VM (a plan of pointer/key steps from actions.ts,
// then screenshots from the framebuffer this client keeps current). No guest dependency: any VNC server will do.
import type { Duplex } from 'node:stream';
import { HangarError } from '../errors.js';
import { isInput, planInput, type Action, type ShotOptions, type Step } from './actions.js';
import { rfbConnect, type RfbConnection } from './rfb/connection.js';
import { crop, encodeImage, scale } from './rfb/framebuffer.js';

export interface ComputerDeps {
  /** A byte stream to the VM's RFB server (the controller's dial: restores a hibernated VM first). */
  dial(vmId: string): Promise<Duplex>;
  /** Input reached the VM: it is in use (manager.touch). */
  touch?(vmId: string): void;
  /** Held while a connection is open: the VM is not idle (manager.hold). */
  hold?(vmId: string): () => void;
  idleMs?: number;
  connectTimeoutMs?: number;
  /** After input, a screenshot waits until the screen has been quiet this long (at most settleMaxMs). */
  settleQuietMs?: number;
  settleMaxMs?: number;
  /** A screenshot this soon after the connection opened waits for the server's first poll (default 1500 ms). */
  freshMs?: number;
}

export type ActionResult = Record<string, unknown> & { action: string };

interface Live {
  conn: RfbConnection;
  buttons: number;
  lastInputAt: number;
  idle: NodeJS.Timeout | null;
  release: () => void;
  /** When the connection was opened: its first frame may be the server's stale copy (see screenshot()). */
  openedAt: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class ComputerService {
  private readonly live = new Map<string, Promise<Live>>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly idleMs: number;
  private closing = false;

  constructor(private readonly deps: ComputerDeps) {
    this.idleMs = deps.idleMs ?? 60_000;
  }

  /** VMs with an open connection now. */
  connected(): string[] {
    return [...this.live.keys()];
  }

  /** Runs one action on the VM (after the actions queued before it). */
  run(vmId: string, action: Action): Promise<ActionResult> {
    const prev = this.queues.get(vmId) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.exec(vmId, action));
    this.queues.set(vmId, next);
    void next.finally(() => { if (this.queues.get(vmId) === next) this.queues.delete(vmId); }).catch(() => undefined);
    return next;
  }

  /** Closes the VM's connection (it stopped, or its viewers were revoked). */
  drop(vmId: string): void {
    const p = this.live.get(vmId);
    this.live.delete(vmId);
    void p?.then((l) => { if (l.idle) clearTimeout(l.idle); l.conn.close(); }, () => undefined);
  }

  /**
   * Closes the VM's connection and resolves once its server has closed its end too (at most timeoutMs): before
   * the VM's state is saved, so a restored guest does not hold a connection to this client.
   */
  async shutdown(vmId: string, timeoutMs = 1500): Promise<void> {
    const p = this.live.get(vmId);
    this.live.delete(vmId);
    const l = await p?.catch(() => undefined);
    if (!l) return;
    if (l.idle) clearTimeout(l.idle);
    await l.conn.shutdown(timeoutMs);
  }

  close(): void {
    this.closing = true;
    for (const id of [...this.live.keys()]) this.drop(id);
  }

  private connection(vmId: string): Promise<Live> {
    if (this.closing) return Promise.reject(new HangarError('CANCELLED', 'the controller is shutting down'));
    const have = this.live.get(vmId);
    if (have) return have;
    const p = (async (): Promise<Live> => {
      const release = this.deps.hold?.(vmId) ?? ((): void => undefined);
      try {
        const conn = await rfbConnect(await this.deps.dial(vmId), this.deps.connectTimeoutMs ?? 15_000);
        const l: Live = { conn, buttons: 0, lastInputAt: 0, idle: null, release, openedAt: Date.now() };
        conn.onClose(() => {
          release();
          if (this.live.get(vmId) === p) this.live.delete(vmId);
        });
        return l;
      } catch (e) {
        release();
        throw e;
      }
    })();
    this.live.set(vmId, p);
    p.catch(() => { if (this.live.get(vmId) === p) this.live.delete(vmId); });
    return p;
  }

  private armIdle(vmId: string, l: Live): void {
    if (l.idle) clearTimeout(l.idle);
    l.idle = setTimeout(() => this.drop(vmId), this.idleMs);
    l.idle.unref();
  }

  private async exec(vmId: string, a: Action): Promise<ActionResult> {
    const l = await this.connection(vmId);
    if (l.idle) clearTimeout(l.idle);
    try {
      return await this.perform(vmId, l, a);
    } finally {
      if (!l.conn.closed) this.armIdle(vmId, l);
    }
  }

  private async perform(vmId: string, l: Live, a: Action): Promise<ActionResult> {
    const c = l.conn;
    const fb = c.framebuffer();
    const screen = { width: fb.width, height: fb.height };
    switch (a.action) {
      case 'screenshot': case 'zoom': return { action: a.action, ...(await this.screenshot(l, a.shot)) };
      case 'cursor_position': { const p = c.pointer(); return { action: a.action, x: p.x, y: p.y }; }
      case 'screen_size': return { action: a.action, ...screen };
      case 'get_clipboard': return { action: a.action, text: c.clipboard() };
      case 'set_clipboard':
        c.setClipboard(a.text);
        this.deps.touch?.(vmId);
        return { action: a.action, done: true };
      default: break;
    }
    const steps = planInput(a, { pointer: c.pointer(), screen, buttons: l.buttons });
    await this.runSteps(l, steps);
    if (isInput(a)) { l.lastInputAt = Date.now(); this.deps.touch?.(vmId); }
    await c.flush();
    const p = c.pointer();
    return { action: a.action, done: true, cursor: { x: p.x, y: p.y } };
  }

  private async runSteps(l: Live, steps: readonly Step[]): Promise<void> {
    for (const s of steps) {
      if ('sleepMs' in s) await sleep(s.sleepMs);
      else if ('pointer' in s) { l.conn.pointerEvent(...s.pointer); l.buttons = s.pointer[0]; }
      else l.conn.key(s.key[0], s.key[1]);
    }
  }

  private async screenshot(l: Live, o: ShotOptions): Promise<Record<string, unknown>> {
    const c = l.conn;
    // A fresh connection: x11vnc does not poll the screen while no viewer is connected, so the first frame is the
    // screen as of its last poll and what changed since comes with its first poll (~1 s under TCG, bench/desktop's
    // notes). Wait for that update (at most freshMs after connecting), then for the screen to be quiet.
    const fresh = (this.deps.freshMs ?? 1500) - (Date.now() - l.openedAt);
    if (fresh > 0 && (await c.nextUpdate(fresh))) await c.settle(this.deps.settleQuietMs ?? 80, this.deps.settleMaxMs ?? 1500);
    // Input just sent: give the screen a moment to show it (updates stop arriving), never long.
    const recent = Date.now() - l.lastInputAt < (this.deps.settleMaxMs ?? 1500);
    await c.settle(recent ? this.deps.settleQuietMs ?? 80 : 0, recent ? this.deps.settleMaxMs ?? 1500 : 500);
    const fb = c.framebuffer();
    // Synchronous from here: no update can change the framebuffer while it is encoded.
    const img = scale(o.region ? crop(fb, o.region) : fb, o.scale);
    const data = encodeImage(img, o.format, o.quality);
    return {
      width: img.width, height: img.height, screen: { width: fb.width, height: fb.height },
      image: { type: 'base64', media_type: o.format === 'png' ? 'image/png' : 'image/jpeg', data: data.toString('base64') },
    };
  }
}
