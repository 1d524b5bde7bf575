import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ERRORS, HangarError, exitCodeOf, toHangarError } from '../src/errors.js';

test('every error code maps to an HTTP status and an exit code', () => {
  for (const code of Object.keys(ERRORS) as (keyof typeof ERRORS)[]) {
    const e = new HangarError(code, 'x');
    assert.ok(e.httpStatus >= 400 && e.httpStatus < 600, code);
    assert.ok([2, 3, 4, 5].includes(exitCodeOf(code)), code);
  }
});

test('toHangarError keeps HangarErrors and wraps the rest', () => {
  const h = new HangarError('NOT_FOUND', 'gone');
  assert.equal(toHangarError(h), h);
  const w = toHangarError(new Error('boom'));
  assert.equal(w.code, 'INTERNAL');
  assert.equal(w.message, 'boom');
});
