// The computer-use action vocabulary: Anthropic's computer-use tool as is (`{"action":"left_click","coordinate":[x,y]}`,
// key, type, mouse_move, left_click_drag, right/middle/double/triple_click, scroll, left_mouse_down/up, hold_key,
// cursor_position, screenshot, zoom, wait) plus Hangar's own (screen_size, get_clipboard, set_clipboard, screenshot
// options). Pure: parseAction validates a request body once into a typed Action; planInput turns an input action into
// RFB steps (pointer and key events, pauses) for the executor in computer.ts.
import { HangarError } from '../errors.js';
import { BUTTON } from './rfb/codec.js';
import type { Region } from './rfb/framebuffer.js';
import { parseKeySequence, textKeysyms } from './keysyms.js';

export const ACTIONS = [
  'screenshot', 'zoom', 'cursor_position', 'screen_size', 'mouse_move', 'left_click', 'right_click', 'middle_click',
  'double_click', 'triple_click', 'left_click_drag', 'left_mouse_down', 'left_mouse_up', 'scroll', 'key', 'hold_key',
  'type', 'wait', 'get_clipboard', 'set_clipboard',
] as const;
export type ActionName = typeof ACTIONS[number];

export type Point = readonly [number, number];
export type ScrollDirection = 'up' | 'down' | 'left' | 'right';

export interface ShotOptions {
  format: 'png' | 'jpeg';
  quality: number;
  region: Region | null;
  scale: number;
}

export type Action =
  | { action: 'screenshot' | 'zoom'; shot: ShotOptions }
  | { action: 'cursor_position' | 'screen_size' | 'get_clipboard' | 'left_mouse_down' | 'left_mouse_up'; coordinate: Point | null }
  | { action: 'mouse_move'; coordinate: Point }
  | { action: 'left_click' | 'right_click' | 'middle_click' | 'double_click' | 'triple_click'; coordinate: Point | null; modifiers: number[] }
  | { action: 'left_click_drag'; start: Point | null; coordinate: Point }
  | { action: 'scroll'; coordinate: Point | null; direction: ScrollDirection; amount: number; modifiers: number[] }
  | { action: 'key'; combos: number[][]; repeat: number }
  | { action: 'hold_key'; combos: number[][]; durationMs: number }
  | { action: 'type'; keysyms: number[]; text: string }
  | { action: 'wait'; durationMs: number }
  | { action: 'set_clipboard'; text: string };

/** Longest wait or hold (Anthropic's tool allows up to 100 s). */
export const MAX_DURATION_S = 100;
/** Longest text one `type` action takes. */
export const MAX_TYPE_CHARS = 10_000;
const MAX_SCROLL = 100;

function bad(message: string, details: Record<string, unknown> = {}): never {
  throw new HangarError('INVALID_ARGUMENT', message, details);
}

const KNOWN_FIELDS = new Set(['action', 'coordinate', 'start_coordinate', 'text', 'duration', 'scroll_direction', 'scroll_amount', 'region', 'format', 'quality', 'scale', 'repeat']);

function point(v: unknown, field: string): Point {
  if (!Array.isArray(v) || v.length !== 2 || !v.every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffff)) {
    bad(`${field} must be [x, y], two non-negative integers`, { field });
  }
  return [v[0] as number, v[1] as number];
}

const optPoint = (v: unknown, field: string): Point | null => (v === undefined || v === null ? null : point(v, field));

function text(v: unknown, field = 'text'): string {
  if (typeof v !== 'string') bad(`${field} must be a string`, { field });
  return v;
}

function seconds(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > MAX_DURATION_S) bad(`${field} must be a number of seconds from 0 to ${MAX_DURATION_S}`, { field });
  return Math.round(v * 1000);
}

/** Modifier keys held during a click or scroll (`text`: "shift", "ctrl+alt"), as keysyms. */
function modifiers(v: unknown): number[] {
  if (v === undefined || v === null || v === '') return [];
  return parseKeySequence(text(v)).flat();
}

/**
 * Region: Anthropic's zoom `[x1, y1, x2, y2]` (corners) or Hangar's `{x, y, width, height}`.
 */
function region(v: unknown): Region | null {
  if (v === undefined || v === null) return null;
  if (Array.isArray(v)) {
    if (v.length !== 4 || !v.every((n) => Number.isInteger(n) && n >= 0)) bad('region must be [x1, y1, x2, y2] (non-negative integers)', { field: 'region' });
    const [x1, y1, x2, y2] = v as number[];
    if (x2! <= x1! || y2! <= y1!) bad('region [x1, y1, x2, y2] needs x2 > x1 and y2 > y1', { field: 'region' });
    return { x: x1!, y: y1!, width: x2! - x1!, height: y2! - y1! };
  }
  if (typeof v === 'object') {
    const r = v as Record<string, unknown>;
    const keys = Object.keys(r);
    const need = ['x', 'y', 'width', 'height'];
    if (keys.length !== 4 || !need.every((k) => Number.isInteger(r[k]) && (r[k] as number) >= (k === 'x' || k === 'y' ? 0 : 1))) {
      bad('region must be {x, y, width, height} (integers, width and height at least 1)', { field: 'region' });
    }
    return { x: r.x as number, y: r.y as number, width: r.width as number, height: r.height as number };
  }
  return bad('region must be [x1, y1, x2, y2] or {x, y, width, height}', { field: 'region' });
}

function shot(b: Record<string, unknown>, zoom: boolean): ShotOptions {
  const format = b.format ?? 'png';
  if (format !== 'png' && format !== 'jpeg') bad('format must be png or jpeg', { field: 'format' });
  const quality = b.quality ?? 80;
  if (!Number.isInteger(quality) || (quality as number) < 1 || (quality as number) > 100) bad('quality must be an integer from 1 to 100', { field: 'quality' });
  const scale = b.scale ?? 1;
  if (typeof scale !== 'number' || !(scale > 0 && scale <= 1)) bad('scale must be a number in (0, 1]', { field: 'scale' });
  const r = region(b.region);
  if (zoom && !r) bad('zoom needs a region [x1, y1, x2, y2]', { field: 'region' });
  return { format, quality: quality as number, region: r, scale };
}

/** Validates one action request (a JSON object) into an Action; INVALID_ARGUMENT naming the field otherwise. */
export function parseAction(body: unknown): Action {
  if (!body || typeof body !== 'object' || Array.isArray(body)) bad('the body must be an object with an "action"');
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!KNOWN_FIELDS.has(k)) throw new HangarError('UNKNOWN_FIELD', `unknown field ${JSON.stringify(k)}`, { field: k });
  const a = b.action;
  if (typeof a !== 'string' || !(ACTIONS as readonly string[]).includes(a)) bad(`action must be one of ${ACTIONS.join(', ')}`, { field: 'action', action: a });
  const name = a as ActionName;
  switch (name) {
    case 'screenshot': return { action: name, shot: shot(b, false) };
    case 'zoom': return { action: name, shot: shot(b, true) };
    case 'cursor_position': case 'screen_size': case 'get_clipboard': case 'left_mouse_down': case 'left_mouse_up':
      return { action: name, coordinate: optPoint(b.coordinate, 'coordinate') };
    case 'mouse_move': return { action: name, coordinate: point(b.coordinate, 'coordinate') };
    case 'left_click': case 'right_click': case 'middle_click': case 'double_click': case 'triple_click':
      return { action: name, coordinate: optPoint(b.coordinate, 'coordinate'), modifiers: modifiers(b.text) };
    case 'left_click_drag':
      return { action: name, start: optPoint(b.start_coordinate, 'start_coordinate'), coordinate: point(b.coordinate, 'coordinate') };
    case 'scroll': {
      const direction = b.scroll_direction;
      if (direction !== 'up' && direction !== 'down' && direction !== 'left' && direction !== 'right') bad('scroll_direction must be up, down, left or right', { field: 'scroll_direction' });
      const amount = b.scroll_amount ?? 3;
      if (!Number.isInteger(amount) || (amount as number) < 0 || (amount as number) > MAX_SCROLL) bad(`scroll_amount must be an integer from 0 to ${MAX_SCROLL}`, { field: 'scroll_amount' });
      return { action: name, coordinate: optPoint(b.coordinate, 'coordinate'), direction, amount: amount as number, modifiers: modifiers(b.text) };
    }
    case 'key': {
      const repeat = b.repeat ?? 1;
      if (!Number.isInteger(repeat) || (repeat as number) < 1 || (repeat as number) > 100) bad('repeat must be an integer from 1 to 100', { field: 'repeat' });
      return { action: name, combos: parseKeySequence(text(b.text)), repeat: repeat as number };
    }
    case 'hold_key': return { action: name, combos: parseKeySequence(text(b.text)), durationMs: seconds(b.duration, 'duration') };
    case 'type': {
      const t = text(b.text);
      if ([...t].length > MAX_TYPE_CHARS) bad(`text may have at most ${MAX_TYPE_CHARS} characters`, { field: 'text' });
      return { action: name, keysyms: textKeysyms(t), text: t };
    }
    case 'wait': return { action: name, durationMs: seconds(b.duration ?? 1, 'duration') };
    case 'set_clipboard': return { action: name, text: text(b.text) };
  }
}

/** One event the executor sends, or a pause. */
export type Step =
  | { pointer: readonly [buttons: number, x: number, y: number] }
  | { key: readonly [keysym: number, down: boolean] }
  | { sleepMs: number };

export interface InputState {
  pointer: { x: number; y: number };
  screen: { width: number; height: number };
  /** Buttons held now (left_mouse_down without its up). */
  buttons: number;
}

/** Pause between the clicks of a double or triple click (well inside X's usual multi-click time). */
const MULTI_CLICK_GAP_MS = 40;
/** Intermediate pointer positions of a drag (window managers and toolkits need motion, not a jump). */
const DRAG_STEPS = 8;
const DRAG_STEP_MS = 15;

function inside(p: Point, s: InputState['screen'], field: string): Point {
  if (p[0] >= s.width || p[1] >= s.height) bad(`${field} [${p[0]}, ${p[1]}] is outside the ${s.width}x${s.height} screen`, { field, screen: s });
  return p;
}

const press = (keysyms: readonly number[]): Step[] => keysyms.map((k) => ({ key: [k, true] as const }));
const release = (keysyms: readonly number[]): Step[] => [...keysyms].reverse().map((k) => ({ key: [k, false] as const }));
const combo = (keysyms: readonly number[]): Step[] => [...press(keysyms), ...release(keysyms)];

const CLICK: Record<string, { button: number; count: number }> = {
  left_click: { button: BUTTON.left, count: 1 }, right_click: { button: BUTTON.right, count: 1 }, middle_click: { button: BUTTON.middle, count: 1 },
  double_click: { button: BUTTON.left, count: 2 }, triple_click: { button: BUTTON.left, count: 3 },
};
const WHEEL: Record<ScrollDirection, number> = { up: BUTTON.wheelUp, down: BUTTON.wheelDown, left: BUTTON.wheelLeft, right: BUTTON.wheelRight };

/** The RFB steps of an input action (pure). Non-input actions (screenshot, clipboard…) have none. */
export function planInput(a: Action, st: InputState): Step[] {
  const at = (c: Point | null, field = 'coordinate'): Point => (c ? inside(c, st.screen, field) : [st.pointer.x, st.pointer.y]);
  const held = st.buttons;
  switch (a.action) {
    case 'mouse_move': { const [x, y] = at(a.coordinate); return [{ pointer: [held, x, y] }]; }
    case 'left_mouse_down': { const [x, y] = at(a.coordinate); return [{ pointer: [held, x, y] }, { pointer: [held | BUTTON.left, x, y] }]; }
    case 'left_mouse_up': { const [x, y] = at(a.coordinate); return [{ pointer: [held | BUTTON.left, x, y] }, { pointer: [held & ~BUTTON.left, x, y] }]; }
    case 'left_click': case 'right_click': case 'middle_click': case 'double_click': case 'triple_click': {
      const { button, count } = CLICK[a.action]!;
      const [x, y] = at(a.coordinate);
      const steps: Step[] = [{ pointer: [held, x, y] }, ...press(a.modifiers)];
      for (let i = 0; i < count; i++) {
        if (i > 0) steps.push({ sleepMs: MULTI_CLICK_GAP_MS });
        steps.push({ pointer: [held | button, x, y] }, { pointer: [held, x, y] });
      }
      return [...steps, ...release(a.modifiers)];
    }
    case 'left_click_drag': {
      const [sx, sy] = at(a.start, 'start_coordinate');
      const [ex, ey] = at(a.coordinate);
      const steps: Step[] = [{ pointer: [held, sx, sy] }, { pointer: [held | BUTTON.left, sx, sy] }, { sleepMs: DRAG_STEP_MS }];
      for (let i = 1; i <= DRAG_STEPS; i++) {
        steps.push({ pointer: [held | BUTTON.left, Math.round(sx + ((ex - sx) * i) / DRAG_STEPS), Math.round(sy + ((ey - sy) * i) / DRAG_STEPS)] }, { sleepMs: DRAG_STEP_MS });
      }
      return [...steps, { pointer: [held, ex, ey] }];
    }
    case 'scroll': {
      const [x, y] = at(a.coordinate);
      const steps: Step[] = [{ pointer: [held, x, y] }, ...press(a.modifiers)];
      for (let i = 0; i < a.amount; i++) steps.push({ pointer: [held | WHEEL[a.direction], x, y] }, { pointer: [held, x, y] });
      return [...steps, ...release(a.modifiers)];
    }
    case 'key': {
      const steps: Step[] = [];
      for (let r = 0; r < a.repeat; r++) for (const c of a.combos) steps.push(...combo(c));
      return steps;
    }
    case 'hold_key': {
      const all = a.combos.flat();
      return [...press(all), { sleepMs: a.durationMs }, ...release(all)];
    }
    case 'type': return a.keysyms.flatMap((k) => combo([k]));
    case 'wait': return [{ sleepMs: a.durationMs }];
    default: return [];
  }
}

/** Whether an action changes the screen (the executor then lets the framebuffer settle before a screenshot). */
export function isInput(a: Action): boolean {
  return !['screenshot', 'zoom', 'cursor_position', 'screen_size', 'get_clipboard', 'wait'].includes(a.action);
}
