// Key names as xdotool (and Anthropic's computer-use tool) spell them — `Return`, `ctrl+l`, `super`, `F5`,
// `shift+Tab`, `KP_Enter` — to X keysyms, and text to the keysyms that type it. Pure tables and functions.
//
// Text: Latin-1 characters are their own keysyms (X11 defines them so); every other character is the Unicode
// keysym 0x01000000 + code point. x11vnc (default -add_keysyms) binds a keysym missing from the X keymap to an
// unused keycode for as long as it is needed, so any character can be typed — also into clients such as xterm.
import { HangarError } from '../errors.js';

const NAMED: Readonly<Record<string, number>> = {
  BackSpace: 0xff08, Tab: 0xff09, Linefeed: 0xff0a, Clear: 0xff0b, Return: 0xff0d, Pause: 0xff13, Scroll_Lock: 0xff14,
  Sys_Req: 0xff15, Escape: 0xff1b, Delete: 0xffff, Home: 0xff50, Left: 0xff51, Up: 0xff52, Right: 0xff53, Down: 0xff54,
  Prior: 0xff55, Page_Up: 0xff55, Next: 0xff56, Page_Down: 0xff56, End: 0xff57, Begin: 0xff58, Select: 0xff60,
  Print: 0xff61, Execute: 0xff62, Insert: 0xff63, Undo: 0xff65, Redo: 0xff66, Menu: 0xff67, Find: 0xff68,
  Cancel: 0xff69, Help: 0xff6a, Break: 0xff6b, Mode_switch: 0xff7e, Num_Lock: 0xff7f,
  KP_Space: 0xff80, KP_Tab: 0xff89, KP_Enter: 0xff8d, KP_Home: 0xff95, KP_Left: 0xff96, KP_Up: 0xff97, KP_Right: 0xff98,
  KP_Down: 0xff99, KP_Prior: 0xff9a, KP_Page_Up: 0xff9a, KP_Next: 0xff9b, KP_Page_Down: 0xff9b, KP_End: 0xff9c,
  KP_Begin: 0xff9d, KP_Insert: 0xff9e, KP_Delete: 0xff9f, KP_Equal: 0xffbd, KP_Multiply: 0xffaa, KP_Add: 0xffab,
  KP_Separator: 0xffac, KP_Subtract: 0xffad, KP_Decimal: 0xffae, KP_Divide: 0xffaf,
  Shift_L: 0xffe1, Shift_R: 0xffe2, Control_L: 0xffe3, Control_R: 0xffe4, Caps_Lock: 0xffe5, Shift_Lock: 0xffe6,
  Meta_L: 0xffe7, Meta_R: 0xffe8, Alt_L: 0xffe9, Alt_R: 0xffea, Super_L: 0xffeb, Super_R: 0xffec, Hyper_L: 0xffed,
  Hyper_R: 0xffee, ISO_Level3_Shift: 0xfe03,
  space: 0x20, exclam: 0x21, quotedbl: 0x22, numbersign: 0x23, dollar: 0x24, percent: 0x25, ampersand: 0x26,
  apostrophe: 0x27, quoteright: 0x27, parenleft: 0x28, parenright: 0x29, asterisk: 0x2a, plus: 0x2b, comma: 0x2c,
  minus: 0x2d, period: 0x2e, slash: 0x2f, colon: 0x3a, semicolon: 0x3b, less: 0x3c, equal: 0x3d, greater: 0x3e,
  question: 0x3f, at: 0x40, bracketleft: 0x5b, backslash: 0x5c, bracketright: 0x5d, asciicircum: 0x5e,
  underscore: 0x5f, grave: 0x60, quoteleft: 0x60, braceleft: 0x7b, bar: 0x7c, braceright: 0x7d, asciitilde: 0x7e,
  XF86AudioMute: 0x1008ff12, XF86AudioLowerVolume: 0x1008ff11, XF86AudioRaiseVolume: 0x1008ff13,
  XF86AudioPlay: 0x1008ff14, XF86AudioStop: 0x1008ff15, XF86AudioPrev: 0x1008ff16, XF86AudioNext: 0x1008ff17,
  XF86Back: 0x1008ff26, XF86Forward: 0x1008ff27, XF86Refresh: 0x1008ff29, XF86HomePage: 0x1008ff18,
};

/** Other spellings (case-insensitive): what xdotool users and models write besides the keysym names. */
const ALIASES: Readonly<Record<string, string>> = {
  enter: 'Return', return: 'Return', ret: 'Return', tab: 'Tab', esc: 'Escape', escape: 'Escape', backspace: 'BackSpace',
  bksp: 'BackSpace', delete: 'Delete', del: 'Delete', insert: 'Insert', ins: 'Insert', home: 'Home', end: 'End',
  pageup: 'Page_Up', page_up: 'Page_Up', pgup: 'Page_Up', prior: 'Prior', pagedown: 'Page_Down', page_down: 'Page_Down',
  pgdn: 'Page_Down', next: 'Next', left: 'Left', right: 'Right', up: 'Up', down: 'Down', space: 'space', spacebar: 'space',
  shift: 'Shift_L', lshift: 'Shift_L', rshift: 'Shift_R', shift_l: 'Shift_L', shift_r: 'Shift_R',
  ctrl: 'Control_L', control: 'Control_L', lctrl: 'Control_L', rctrl: 'Control_R', control_l: 'Control_L', control_r: 'Control_R', ctrl_l: 'Control_L', ctrl_r: 'Control_R',
  alt: 'Alt_L', lalt: 'Alt_L', ralt: 'Alt_R', alt_l: 'Alt_L', alt_r: 'Alt_R', option: 'Alt_L', altgr: 'ISO_Level3_Shift',
  meta: 'Meta_L', meta_l: 'Meta_L', meta_r: 'Meta_R',
  super: 'Super_L', super_l: 'Super_L', super_r: 'Super_R', win: 'Super_L', windows: 'Super_L', cmd: 'Super_L', command: 'Super_L',
  capslock: 'Caps_Lock', caps_lock: 'Caps_Lock', numlock: 'Num_Lock', num_lock: 'Num_Lock', scrolllock: 'Scroll_Lock',
  print: 'Print', printscreen: 'Print', prtsc: 'Print', menu: 'Menu', pause: 'Pause', break: 'Break',
  minus: 'minus', plus: 'plus', equal: 'equal', comma: 'comma', period: 'period', slash: 'slash', backslash: 'backslash',
};

const MODIFIERS: ReadonlySet<number> = new Set([0xffe1, 0xffe2, 0xffe3, 0xffe4, 0xffe7, 0xffe8, 0xffe9, 0xffea, 0xffeb, 0xffec, 0xffed, 0xffee, 0xfe03]);

const LOWER_NAMED = new Map(Object.entries(NAMED).map(([k, v]) => [k.toLowerCase(), v]));

/** The keysym that types one character (a single code point). */
export function charKeysym(ch: string): number {
  const cp = ch.codePointAt(0)!;
  if (ch === '\n' || ch === '\r') return NAMED.Return!;
  if (ch === '\t') return NAMED.Tab!;
  if ((cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xff)) return cp;
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) throw new HangarError('INVALID_ARGUMENT', `control character U+${cp.toString(16).padStart(4, '0')} cannot be typed`, { codePoint: cp });
  return 0x01000000 + cp;
}

/** Keysyms for each character of `text` (by code point, so characters outside the BMP are one keysym). */
export function textKeysyms(text: string): number[] {
  const out: number[] = [];
  let prevCr = false;
  for (const ch of text) {
    if (ch === '\n' && prevCr) { prevCr = false; continue; } // \r\n is one Return
    prevCr = ch === '\r';
    out.push(charKeysym(ch));
  }
  return out;
}

/** One key name to its keysym: a keysym name, an alias, F1–F35, a single character, or 0x… hex. */
export function keysymOf(name: string): number {
  if (name.length === 0) throw new HangarError('INVALID_ARGUMENT', 'an empty key name', { key: name });
  const direct = NAMED[name];
  if (direct !== undefined) return direct;
  if ([...name].length === 1) return charKeysym(name);
  const lower = name.toLowerCase();
  const alias = ALIASES[lower];
  if (alias !== undefined) return NAMED[alias]!;
  const f = /^f(\d{1,2})$/.exec(lower);
  if (f && Number(f[1]) >= 1 && Number(f[1]) <= 35) return 0xffbe + Number(f[1]) - 1;
  const kp = /^kp_(\d)$/.exec(lower);
  if (kp) return 0xffb0 + Number(kp[1]);
  const hex = /^0x([0-9a-f]{1,8})$/.exec(lower);
  if (hex) return parseInt(hex[1]!, 16);
  const named = LOWER_NAMED.get(lower);
  if (named !== undefined) return named;
  throw new HangarError('INVALID_ARGUMENT', `unknown key name ${JSON.stringify(name)} (xdotool names: Return, ctrl+l, super, F5, Page_Down…)`, { key: name });
}

export function isModifier(keysym: number): boolean {
  return MODIFIERS.has(keysym);
}

/**
 * A combination such as `ctrl+shift+t` ('+' joins; '-' is a key of its own) as its keysyms in press
 * order: modifiers first as written, the key last. A lone `+` is the plus key; `ctrl++` is ctrl and plus.
 */
export function parseCombo(combo: string): number[] {
  const s = combo.trim();
  if (s === '') throw new HangarError('INVALID_ARGUMENT', 'an empty key combination', { key: combo });
  if (s === '+') return [NAMED.plus!];
  const parts = s.endsWith('++') ? [...s.slice(0, -2).split('+'), '+'] : s.split('+');
  if (parts.some((p) => p === '')) throw new HangarError('INVALID_ARGUMENT', `malformed key combination ${JSON.stringify(combo)}`, { key: combo });
  return parts.map(keysymOf);
}

/** A key sequence as xdotool takes it: combinations separated by spaces (`ctrl+a Delete`). */
export function parseKeySequence(text: string): number[][] {
  if (text === ' ') return [[NAMED.space!]];
  const combos = text.trim().split(/\s+/).filter((c) => c !== '');
  if (combos.length === 0) throw new HangarError('INVALID_ARGUMENT', 'no key given', { key: text });
  return combos.map(parseCombo);
}
