// `npm run bench -- desktop-safety`: does an x11vnc flag set keep answering its clients after the input the
// @e2b/desktop SDK sends (test/e2b/sdk.int's desktop test: moves, clicks, a double click, right and middle clicks,
// a wheel scroll, a drag, typing, keys), on one booted desktop VM with no image build. For each set (and round) the
// guest's x11vnc is restarted through the agent with those flags, the SDK's sequence runs through the controller's
// computer-use API (POST /v1/vms/:id/computer), then a drag that surely starts on the terminal's title bar (the
// SDK's at 50,60 hits it or not, by where the frame is), then three checks: a new RFB connection inside the guest
// gets its banner, a computer-use screenshot works, and no connection to x11vnc keeps unread bytes (`ss -tn` Recv-Q
// > 0 on every sample: x11vnc stopped reading). A set that fails is killed (and twm restarted) before the next.
// HANGAR_BENCH_X11VNC_FLAGS="FLAGS|FLAGS|…" ('shipped': the flags of the image's x11vnc line, read from
// src/image/guest/hangar-init; 'shipped X Y': those plus X Y); HANGAR_BENCH_ROUNDS rounds per set (default 2).
// HANGAR_BENCH_TWMRC="image|LINE;LINE|…" runs every set once per twm configuration: 'image' (the image's twmrc) or
// lines appended to the guest's /etc/hangar/twmrc (twm restarted; 'image' only first), e.g. 'image|OpaqueMove'.
// Root (a test network in namespaces it removes). Progress on stderr; --json prints the figures only.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { table } from '../src/cli/command.js';
import { VNC_PORT } from '../src/guest-protocol.js';
import { normalizeCreate } from '../src/vm/input.js';
import { imageSkipReason } from '../test/support/controller.js';
import { ROOT } from '../test/support/env.js';
import { startLiveController, type LiveController } from '../test/support/live-controller.js';
import type { BenchFigures, BenchOptions } from './index.js';

export const summary = 'x11vnc flag sets after the @e2b/desktop SDK input: still answering (banner, screenshot, no stuck Recv-Q)?';

const ROUNDS = Number(process.env.HANGAR_BENCH_ROUNDS ?? 2);
const DEFAULT_SETS = 'shipped|shipped -nonap|shipped -noscr|shipped -nowf|shipped -nonap -noscr -nowf';

let quiet = false;
const say = (msg: string): void => { if (!quiet) process.stderr.write(`desktop-safety: ${msg}\n`); };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The flags of the image's x11vnc line (hangar-init), without the display and port. Pure on the file's text. */
export function shippedFlags(init: string): string {
  const line = init.split('\n').find((l) => /^as_user x11vnc /.test(l));
  if (!line) throw new Error('hangar-init has no x11vnc line');
  return line.replace(/^as_user x11vnc -display :0 -rfbport @VNC_PORT@ /, '').replace(/\s*>.*$/, '');
}

/** The @e2b/desktop SDK's calls in sdk.int's desktop test, as src/e2b/desktop.ts turns them into actions. */
export const SDK_SEQUENCE: readonly Record<string, unknown>[] = [
  { action: 'screen_size' },
  { action: 'mouse_move', coordinate: [120, 90] }, { action: 'cursor_position' },
  { action: 'left_click' },
  { action: 'mouse_move', coordinate: [200, 150] }, { action: 'double_click' },
  { action: 'right_click' }, { action: 'middle_click' },
  { action: 'scroll', scroll_direction: 'down', scroll_amount: 2 },
  { action: 'mouse_move', coordinate: [50, 60] }, { action: 'left_mouse_down' },
  { action: 'mouse_move', coordinate: [70, 80] }, { action: 'left_mouse_up' }, { action: 'cursor_position' },
  { action: 'type', text: 'hangar e2b' }, { action: 'key', text: 'Return' }, { action: 'key', text: 'ctrl+a' },
  { action: 'screenshot', format: 'png' },
];

/** What the guest shows when a set failed: the processes of the desktop, x11vnc's sockets, whether X answers. */
const DIAGNOSE = `ps -eo pid,stat,wchan:24,args | grep -E '[x]11vnc|[t]wm|[X]vfb|[x]term'; ss -tnp | grep -E ':${VNC_PORT}\\b'; `
  + `timeout 5 setpriv --reuid=1000 --regid=1000 --clear-groups env DISPLAY=:0 xwininfo -root >/dev/null && echo X answers || echo X does not answer; tail -5 /tmp/x11vnc-safety.log; `
  // Who holds the X server: after twm alone is killed (the init starts it again), does X answer?
  + `pkill -9 -x twm; sleep 1; timeout 5 setpriv --reuid=1000 --regid=1000 --clear-groups env DISPLAY=:0 xwininfo -root >/dev/null && echo X answers once twm is killed || echo X does not answer with twm killed`;

interface Round { ok: boolean; failed: string; sequence_ms: number; banner: boolean; screenshot: boolean; stuck_recvq: number }

async function act(live: LiveController, vm: string, body: Record<string, unknown>, timeoutMs = 20_000): Promise<void> {
  const res = await fetch(`${live.c.url}/v1/vms/${vm}/computer`, {
    method: 'POST', headers: { authorization: `Bearer ${live.c.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${String(body.action)}: ${res.status} ${text.slice(0, 200)}`);
}

export async function run({ json }: BenchOptions): Promise<BenchFigures> {
  quiet = json;
  const skip = process.getuid?.() !== 0 ? 'needs root' : await imageSkipReason();
  if (skip) {
    if (!json) process.stdout.write(`skipped: ${skip}\n`);
    return { skipped: skip };
  }
  const shipped = shippedFlags(readFileSync(join(ROOT, 'src', 'image', 'guest', 'hangar-init'), 'utf8'));
  const sets = (process.env.HANGAR_BENCH_X11VNC_FLAGS ?? DEFAULT_SETS).split('|').map((s) => s.trim()).filter(Boolean);
  const live = await startLiveController({ net: { cidr: '10.219.0.0/29' } });
  const figures: BenchFigures = { rounds: ROUNDS, shipped_flags: shipped };
  const rows: string[][] = [];
  try {
    say('booting a desktop VM');
    const vm = (await (await live.c.manager.create(normalizeCreate({ profile: 'desktop' }))).ready).id;
    const agent = await live.c.agents.session(vm, { timeoutMs: 120_000 });
    const sh = async (cmd: string, user?: string, timeoutMs = 30_000): Promise<{ code: number | null; out: string }> => {
      const h = await agent.exec({ argv: ['bash', '--norc', '-c', cmd], env: { DISPLAY: ':0' }, ...(user ? { user } : {}) });
      const chunks: Buffer[] = [];
      h.stdout.on('data', (d: Buffer) => chunks.push(d));
      h.stderr.on('data', (d: Buffer) => chunks.push(d));
      const timer = setTimeout(() => { void h.signal('KILL').catch(() => undefined); }, timeoutMs);
      const st = await h.exit.finally(() => clearTimeout(timer));
      return { code: st.code, out: Buffer.concat(chunks).toString() };
    };
    const bg = async (cmd: string): Promise<void> => {
      const h = await agent.exec({ cmd, background: true, env: { DISPLAY: ':0' } });
      h.detach();
    };
    const banner = async (): Promise<boolean> => {
      const r = await sh(`timeout 5 bash --norc -c 'exec 3<>/dev/tcp/127.0.0.1/${VNC_PORT}; head -c 12 <&3'`, 'root');
      if (!r.out.startsWith('RFB ')) say(`banner: ${JSON.stringify(r.out)} (exit ${r.code})`);
      return r.out.startsWith('RFB ');
    };
    /** Connections to x11vnc whose Recv-Q stayed above 0 over 4 samples 0.5 s apart (x11vnc reads nothing). */
    const stuck = async (): Promise<number> => {
      const r = await sh(`for i in 1 2 3 4; do ss -tnH state established '( sport = :${VNC_PORT} )' | awk '{print $4"/"$1}'; echo --; sleep 0.5; done`, 'root');
      const samples = r.out.split('--\n').filter((s) => s.trim()).map((s) => new Map(s.trim().split('\n').filter(Boolean).map((l) => { const [peer, q] = l.split('/'); return [peer!, Number(q)] as const; })));
      if (samples.length === 0) return 0;
      return [...samples[0]!.entries()].filter(([peer]) => samples.every((m) => (m.get(peer) ?? 0) > 0)).length;
    };
    const restart = async (flags: string, hard: boolean): Promise<void> => {
      await sh(`pkill -9 -x x11vnc; ${hard ? 'pkill -9 -x twm; ' : ''}sleep 1`, 'root');
      await bg(`exec x11vnc -display :0 -rfbport ${VNC_PORT} ${flags} >/tmp/x11vnc-safety.log 2>&1`);
      const up = await sh(`for i in $(seq 75); do (exec 3<>/dev/tcp/127.0.0.1/${VNC_PORT}) 2>/dev/null && exit 0; sleep 0.2; done; tail -5 /tmp/x11vnc-safety.log; exit 1`);
      if (up.code !== 0) throw new Error(`x11vnc with ${flags} does not listen: ${up.out}\n${(await sh(DIAGNOSE, 'root')).out.trim()}`);
      await sleep(1000);
    };
    let hard = false;
    const twmrcs = (process.env.HANGAR_BENCH_TWMRC ?? 'image').split('|').map((s) => s.trim()).filter(Boolean);
    if (twmrcs.indexOf('image') > 0) throw new Error("HANGAR_BENCH_TWMRC: 'image' can only be the first");
    const cases = twmrcs.flatMap((twmrc) => sets.map((set) => ({ twmrc, set })));
    for (const [i, { twmrc, set }] of cases.entries()) {
      if (twmrc !== 'image' && (i === 0 || cases[i - 1]!.twmrc !== twmrc)) {
        say(`twmrc: the image's plus ${twmrc}`);
        const lines = twmrc.split(';').map((l) => l.trim()).filter(Boolean).map((l) => `'${l.replace(/'/g, `'\\''`)}'`).join(' ');
        await sh(`cp -n /etc/hangar/twmrc /etc/hangar/twmrc.image; { cat /etc/hangar/twmrc.image; printf '%s\\n' ${lines}; } >/etc/hangar/twmrc; pkill -9 -x twm; sleep 2; pgrep -x twm`, 'root');
      }
      const flags = set.replace(/^shipped\b/, shipped);
      const results: Round[] = [];
      for (let k = 0; k < ROUNDS; k++) {
        await restart(flags, hard);
        say(`[${i}] round ${k + 1}: ${set} (twmrc: ${twmrc})`);
        const t0 = Date.now();
        let failed = '';
        for (const body of SDK_SEQUENCE) {
          try { await act(live, vm, body); } catch (e) { failed = `action ${String(body.action)}: ${(e as Error).message}`; break; }
        }
        // Then a drag that surely starts on a title bar (the SDK's at 50,60 hits it or not, by where twm put the frame):
        // twm moves the window while the button is held.
        if (!failed) {
          // The terminal's client window, wherever it is (its title follows the shell's prompt): `+absX+absY` of xterm's line.
          const g = await sh(`setpriv --reuid=1000 --regid=1000 --clear-groups env DISPLAY=:0 xwininfo -root -tree | grep -m1 '("xterm" "XTerm")' | grep -o '+[0-9]*+[0-9]* *$' | tr '+' ' '`, 'root');
          const [x, y] = g.out.trim().split(/\s+/).map(Number) as [number, number];
          const from: [number, number] = [x + 60, Math.max(1, y - 8)];
          const steps = [{ action: 'mouse_move', coordinate: from }, { action: 'left_mouse_down' }, { action: 'mouse_move', coordinate: [from[0] + 30, from[1] + 30] }, { action: 'left_mouse_up' }, { action: 'mouse_move', coordinate: [from[0] + 100, from[1] + 150] }];
          for (const body of steps) {
            try { await act(live, vm, body); } catch (e) { failed = `title drag from ${from.join(',')}: action ${String(body.action)}: ${(e as Error).message}`; break; }
          }
        }
        const sequence_ms = Date.now() - t0;
        await sleep(500);
        const r: Round = { ok: false, failed, sequence_ms, banner: await banner(), screenshot: false, stuck_recvq: await stuck() };
        try { await act(live, vm, { action: 'screenshot', format: 'png' }, 15_000); r.screenshot = true; } catch { /* recorded */ }
        if (!r.failed && !r.banner) r.failed = 'no banner';
        if (!r.failed && !r.screenshot) r.failed = 'no screenshot';
        if (!r.failed && r.stuck_recvq) r.failed = `${r.stuck_recvq} connection(s) with unread bytes`;
        r.ok = !r.failed;
        if (!r.ok) say(`[${i}] round ${k + 1} FAILED: ${r.failed}\n${(await sh(DIAGNOSE, 'root')).out.trim()}`);
        hard = !r.ok;
        results.push(r);
      }
      const good = results.filter((r) => r.ok).length;
      figures[`set${i}_flags`] = set;
      figures[`set${i}_twmrc`] = twmrc;
      figures[`set${i}_ok_rounds`] = good;
      figures[`set${i}_safe`] = good === results.length;
      figures[`set${i}_failures`] = results.filter((r) => !r.ok).map((r) => r.failed).join('; ');
      rows.push([String(i), twmrc, set, `${good}/${results.length}`, results.map((r) => String(r.sequence_ms)).join(','), figures[`set${i}_failures`] as string || '-']);
    }
  } finally {
    await live.destroy();
  }
  if (!json) {
    process.stdout.write(table(['set', 'twmrc', 'flags', 'ok rounds', 'sequence ms', 'failures'], rows));
    process.stdout.write(`shipped: ${shipped}\n`);
  }
  return figures;
}
