// The key-name table: xdotool names and aliases, combinations, F-keys, characters and Unicode keysyms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { charKeysym, keysymOf, parseCombo, parseKeySequence, textKeysyms } from '../../src/control/keysyms.js';

const invalid = (e: Error & { code?: string }): boolean => e.code === 'INVALID_ARGUMENT';

test('xdotool names, aliases and case', () => {
  assert.equal(keysymOf('Return'), 0xff0d);
  assert.equal(keysymOf('enter'), 0xff0d);
  assert.equal(keysymOf('KP_Enter'), 0xff8d);
  assert.equal(keysymOf('super'), 0xffeb);
  assert.equal(keysymOf('Super_L'), 0xffeb);
  assert.equal(keysymOf('ctrl'), 0xffe3);
  assert.equal(keysymOf('Escape'), 0xff1b);
  assert.equal(keysymOf('esc'), 0xff1b);
  assert.equal(keysymOf('Page_Down'), 0xff56);
  assert.equal(keysymOf('pagedown'), 0xff56);
  assert.equal(keysymOf('BACKSPACE'), 0xff08);
  assert.equal(keysymOf('F1'), 0xffbe);
  assert.equal(keysymOf('f12'), 0xffc9);
  assert.equal(keysymOf('F35'), 0xffe0);
  assert.equal(keysymOf('KP_0'), 0xffb0);
  assert.equal(keysymOf('space'), 0x20);
  assert.equal(keysymOf('minus'), 0x2d);
  assert.equal(keysymOf('0x1008ff13'), 0x1008ff13);
  assert.equal(keysymOf('XF86AudioRaiseVolume'), 0x1008ff13);
  assert.throws(() => keysymOf('F36'), invalid);
  assert.throws(() => keysymOf('Hyperdrive'), invalid);
});

test('characters: Latin-1 as themselves, the rest as Unicode keysyms, newline as Return', () => {
  assert.equal(charKeysym('a'), 0x61);
  assert.equal(charKeysym('A'), 0x41);
  assert.equal(charKeysym('é'), 0xe9);
  assert.equal(charKeysym('ž'), 0x0100017e);
  assert.equal(charKeysym('日'), 0x010065e5);
  assert.equal(charKeysym('😀'), 0x0101f600);
  assert.deepEqual(textKeysyms('a\r\nb\n'), [0x61, 0xff0d, 0x62, 0xff0d]);
  assert.deepEqual(textKeysyms('😀x'), [0x0101f600, 0x78]);
  assert.throws(() => charKeysym('\u0007'), invalid);
});

test('combinations and sequences', () => {
  assert.deepEqual(parseCombo('ctrl+l'), [0xffe3, 0x6c]);
  assert.deepEqual(parseCombo('ctrl+shift+T'), [0xffe3, 0xffe1, 0x54]);
  assert.deepEqual(parseCombo('+'), [0x2b]);
  assert.deepEqual(parseCombo('ctrl++'), [0xffe3, 0x2b]);
  assert.deepEqual(parseCombo('alt+F4'), [0xffe9, 0xffc1]);
  assert.deepEqual(parseKeySequence('ctrl+a Delete'), [[0xffe3, 0x61], [0xffff]]);
  assert.deepEqual(parseKeySequence(' '), [[0x20]]);
  assert.throws(() => parseCombo('ctrl+'), invalid);
  assert.throws(() => parseKeySequence(''), invalid);
});
