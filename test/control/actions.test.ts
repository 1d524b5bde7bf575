// Anthropic's computer-use vocabulary as is, Hangar's own actions, their validation, and the input plans.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAction, planInput, isInput, type Step } from '../../src/control/actions.js';

const bad = (code = 'INVALID_ARGUMENT') => (e: Error & { code?: string }): boolean => e.code === code;
const st = { pointer: { x: 5, y: 6 }, screen: { width: 100, height: 80 }, buttons: 0 };

test('the Anthropic computer-use inputs parse as they are', () => {
  const inputs = [
    { action: 'screenshot' }, { action: 'cursor_position' }, { action: 'mouse_move', coordinate: [10, 20] },
    { action: 'left_click', coordinate: [10, 20] }, { action: 'left_click', coordinate: [10, 20], text: 'shift' }, { action: 'left_click' },
    { action: 'right_click', coordinate: [1, 2] }, { action: 'middle_click', coordinate: [1, 2] }, { action: 'double_click', coordinate: [1, 2] },
    { action: 'triple_click', coordinate: [1, 2] }, { action: 'left_click_drag', start_coordinate: [1, 2], coordinate: [30, 40] },
    { action: 'left_mouse_down' }, { action: 'left_mouse_up' }, { action: 'scroll', coordinate: [50, 50], scroll_direction: 'down', scroll_amount: 3 },
    { action: 'key', text: 'ctrl+l' }, { action: 'key', text: 'Return' }, { action: 'hold_key', text: 'shift', duration: 0.5 },
    { action: 'type', text: 'hello' }, { action: 'wait', duration: 1 }, { action: 'zoom', region: [0, 0, 50, 40] },
  ];
  for (const i of inputs) assert.equal(parseAction(i).action, i.action, JSON.stringify(i));
});

test("Hangar's own: screen size, clipboard, screenshot options", () => {
  assert.deepEqual(parseAction({ action: 'screenshot', format: 'jpeg', quality: 50, region: { x: 1, y: 2, width: 3, height: 4 }, scale: 0.5 }),
    { action: 'screenshot', shot: { format: 'jpeg', quality: 50, region: { x: 1, y: 2, width: 3, height: 4 }, scale: 0.5 } });
  assert.equal(parseAction({ action: 'set_clipboard', text: 'x' }).action, 'set_clipboard');
  assert.equal(parseAction({ action: 'get_clipboard' }).action, 'get_clipboard');
  assert.equal(parseAction({ action: 'screen_size' }).action, 'screen_size');
});

test('refusals name the field', () => {
  assert.throws(() => parseAction({ action: 'fly' }), bad());
  assert.throws(() => parseAction({ action: 'left_click', coordinate: [1] }), bad());
  assert.throws(() => parseAction({ action: 'left_click', coordinate: [-1, 2] }), bad());
  assert.throws(() => parseAction({ action: 'left_click', coordinate: [1.5, 2] }), bad());
  assert.throws(() => parseAction({ action: 'mouse_move' }), bad());
  assert.throws(() => parseAction({ action: 'scroll', scroll_direction: 'sideways' }), bad());
  assert.throws(() => parseAction({ action: 'wait', duration: 101 }), bad());
  assert.throws(() => parseAction({ action: 'key', text: 'ctrl+nope' }), bad());
  assert.throws(() => parseAction({ action: 'zoom' }), bad());
  assert.throws(() => parseAction({ action: 'screenshot', scale: 2 }), bad());
  assert.throws(() => parseAction({ action: 'screenshot', bogus: 1 }), bad('UNKNOWN_FIELD'));
  assert.throws(() => parseAction([]), bad());
});

const plan = (body: object, s = st): Step[] => planInput(parseAction(body), s);

test('clicks: move, press, release; double and triple with a gap; modifiers around', () => {
  assert.deepEqual(plan({ action: 'left_click', coordinate: [10, 20] }), [{ pointer: [0, 10, 20] }, { pointer: [1, 10, 20] }, { pointer: [0, 10, 20] }]);
  assert.deepEqual(plan({ action: 'right_click' }), [{ pointer: [0, 5, 6] }, { pointer: [4, 5, 6] }, { pointer: [0, 5, 6] }]);
  assert.equal(plan({ action: 'triple_click', coordinate: [1, 1] }).filter((s) => 'pointer' in s && s.pointer[0] === 1).length, 3);
  const shift = plan({ action: 'left_click', coordinate: [1, 1], text: 'shift' });
  assert.deepEqual(shift[1], { key: [0xffe1, true] });
  assert.deepEqual(shift.at(-1), { key: [0xffe1, false] });
  assert.throws(() => plan({ action: 'left_click', coordinate: [100, 10] }), bad());
});

test('drag: press at the start, intermediate motion with the button held, release at the end', () => {
  const p = plan({ action: 'left_click_drag', start_coordinate: [0, 0], coordinate: [80, 40] });
  const ptr = p.filter((s): s is { pointer: readonly [number, number, number] } => 'pointer' in s);
  assert.deepEqual(ptr[0]!.pointer, [0, 0, 0]);
  assert.deepEqual(ptr[1]!.pointer, [1, 0, 0]);
  assert.ok(ptr.slice(2, -1).every((s) => s.pointer[0] === 1) && ptr.length > 5);
  assert.deepEqual(ptr.at(-1)!.pointer, [0, 80, 40]);
});

test('scroll, keys, combos, hold, type, wait', () => {
  const s = plan({ action: 'scroll', coordinate: [1, 1], scroll_direction: 'up', scroll_amount: 2 });
  assert.deepEqual(s.filter((x) => 'pointer' in x && x.pointer[0] === 8).length, 2);
  assert.deepEqual(plan({ action: 'key', text: 'ctrl+l' }), [{ key: [0xffe3, true] }, { key: [0x6c, true] }, { key: [0x6c, false] }, { key: [0xffe3, false] }]);
  assert.equal(plan({ action: 'key', text: 'Return', repeat: 3 }).length, 6);
  assert.deepEqual(plan({ action: 'hold_key', text: 'shift', duration: 0.25 }), [{ key: [0xffe1, true] }, { sleepMs: 250 }, { key: [0xffe1, false] }]);
  assert.deepEqual(plan({ action: 'type', text: 'ž' }), [{ key: [0x0100017e, true] }, { key: [0x0100017e, false] }]);
  assert.deepEqual(plan({ action: 'wait', duration: 0.1 }), [{ sleepMs: 100 }]);
  assert.deepEqual(plan({ action: 'screenshot' }), []);
  // left_mouse_down holds; the next move keeps the button.
  assert.deepEqual(plan({ action: 'mouse_move', coordinate: [3, 3] }, { ...st, buttons: 1 }), [{ pointer: [1, 3, 3] }]);
  assert.equal(isInput(parseAction({ action: 'cursor_position' })), false);
  assert.equal(isInput(parseAction({ action: 'set_clipboard', text: 'a' })), true);
});
