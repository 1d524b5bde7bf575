// @e2b/desktop drives its sandbox with shell commands (Xvfb and startxfce4 at create, xdotool for input, scrot for
// screenshots, xrandr for the screen size, x11vnc/noVNC for the stream). Hangar's desktop already runs its X server
// and VNC, and Hangar's computer use (src/control/) does input and screenshots over RFB with no guest tool: those
// exact commands are answered natively here instead of running in the guest (the stream's password is kept for
// the stream URL, src/e2b/stream.ts). Pure: desktopCommand recognises the SDK's command lines (anything else runs
// in the guest as usual); runDesktop executes one over computer use.
import { Readable } from 'node:stream';
import type { AgentSession } from '../agent/port.js';
import { parseAction, type Action } from '../control/actions.js';
import { GUEST_USER } from '../image/plan.js';

export type DesktopCommand =
  | { kind: 'ok'; stdout?: string; code?: number }
  | { kind: 'action'; body: Record<string, unknown>; out?: 'cursor' | 'screen' }
  | { kind: 'screenshot'; path: string }
  | { kind: 'stream-key'; key: string };

/** What answers the actions: Hangar's computer use (src/control/computer.ts's ComputerService). */
export interface DesktopPort {
  run(vmId: string, action: Action): Promise<Record<string, unknown>>;
  /** The stream's auth key the SDK set (stream.start({ requireAuth: true })): src/e2b/stream.ts checks it. */
  streamKey?(vmId: string, key: string): void;
}

/** A shell word as the SDK's quoteString wrote it ('…' with '"'"' for a quote), unquoted. Pure. */
export function unquote(word: string): string {
  const m = /^'([\s\S]*)'$/.exec(word);
  return m ? m[1]!.replaceAll(`'"'"'`, `'`) : word;
}

const CLICKS: Record<string, string> = { 1: 'left_click', 2: 'middle_click', 3: 'right_click' };

/** The SDK's command line → what Hangar answers natively, or null (run it in the guest). Pure. */
export function desktopCommand(cmd: string): DesktopCommand | null {
  let m: RegExpExecArray | null;
  // Session start: Hangar's display and window manager already run.
  if (/^Xvfb :\d+ /.test(cmd) || /^xdpyinfo -display :\d+$/.test(cmd) || cmd === 'startxfce4') return { kind: 'ok' };
  if (cmd.startsWith('pgrep -x xfce4-session ')) return { kind: 'ok' };
  // The stream: Hangar's own VNC server serves the display (its viewer: POST /v1/vms/:id/viewer); never stop it.
  if (cmd === 'pgrep -x x11vnc') return { kind: 'ok', code: 1 };
  // The stream's password (requireAuth): kept for the stream URL's check (src/e2b/stream.ts), never written.
  if (cmd === 'mkdir -p ~/.vnc') return { kind: 'ok' };
  if ((m = /^x11vnc -storepasswd ([A-Za-z0-9]{1,128}) ~\/\.vnc\/passwd$/.exec(cmd))) return { kind: 'stream-key', key: m[1]! };
  if (cmd.startsWith('x11vnc -bg -display ') || cmd === 'pkill x11vnc' || cmd.startsWith('cd /opt/noVNC/utils && ./novnc_proxy ')) return { kind: 'ok' };
  if ((m = /^netstat -tuln \| grep ":(\d+) "$/.exec(cmd))) return { kind: 'ok', stdout: `tcp 0 0 0.0.0.0:${m[1]!} 0.0.0.0:* LISTEN\n` };
  if ((m = /^scrot --pointer (\/[^\s;&|`$]+)$/.exec(cmd))) return { kind: 'screenshot', path: m[1]! };
  if ((m = /^xdotool click (\d)$/.exec(cmd)) && CLICKS[m[1]!]) return { kind: 'action', body: { action: CLICKS[m[1]!] } };
  if ((m = /^xdotool click --repeat (\d+) (\d)$/.exec(cmd))) {
    const [n, b] = [Number(m[1]), m[2]!];
    if (b === '4' || b === '5') return { kind: 'action', body: { action: 'scroll', scroll_direction: b === '4' ? 'up' : 'down', scroll_amount: n } };
    if (b === '1' && (n === 2 || n === 3)) return { kind: 'action', body: { action: n === 2 ? 'double_click' : 'triple_click' } };
    return null;
  }
  if ((m = /^xdotool mousemove --sync (\d+) (\d+)$/.exec(cmd))) return { kind: 'action', body: { action: 'mouse_move', coordinate: [Number(m[1]), Number(m[2])] } };
  if (cmd === 'xdotool mousedown 1') return { kind: 'action', body: { action: 'left_mouse_down' } };
  if (cmd === 'xdotool mouseup 1') return { kind: 'action', body: { action: 'left_mouse_up' } };
  if (cmd === 'xdotool getmouselocation') return { kind: 'action', body: { action: 'cursor_position' }, out: 'cursor' };
  if ((m = /^xdotool type --delay \d+ -- ([\s\S]+)$/.exec(cmd))) return { kind: 'action', body: { action: 'type', text: unquote(m[1]!) } };
  if ((m = /^xdotool key ([A-Za-z0-9_+]+)$/.exec(cmd))) return { kind: 'action', body: { action: 'key', text: m[1]! } };
  if (cmd === 'xrandr') return { kind: 'action', body: { action: 'screen_size' }, out: 'screen' };
  return null;
}

export interface DesktopResult { stdout: string; code: number }

/** Runs a recognised command: input and screenshots through computer use, a screenshot written where scrot would. */
export async function runDesktop(c: DesktopCommand, vmId: string, port: DesktopPort, session: () => Promise<AgentSession>, user: string | undefined): Promise<DesktopResult> {
  if (c.kind === 'ok') return { stdout: c.stdout ?? '', code: c.code ?? 0 };
  if (c.kind === 'stream-key') {
    port.streamKey?.(vmId, c.key);
    return { stdout: '', code: 0 };
  }
  if (c.kind === 'screenshot') {
    const r = await port.run(vmId, parseAction({ action: 'screenshot', format: 'png' }));
    const data = Buffer.from(((r.image ?? {}) as { data?: string }).data ?? '', 'base64');
    const owner = user === 'root' ? { uid: 0, gid: 0 } : { uid: GUEST_USER.uid, gid: GUEST_USER.uid };
    await (await session()).writeFile(c.path, Readable.from([data]), owner);
    return { stdout: '', code: 0 };
  }
  const r = await port.run(vmId, parseAction(c.body));
  if (c.out === 'cursor') return { stdout: `x:${String(r.x)} y:${String(r.y)} screen:0 window:0\n`, code: 0 };
  if (c.out === 'screen') return { stdout: `Screen 0: current ${String(r.width)} x ${String(r.height)}\nhangar connected ${String(r.width)}x${String(r.height)}+0+0\n`, code: 0 };
  return { stdout: '', code: 0 };
}
