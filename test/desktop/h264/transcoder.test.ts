// The transcoder's bounds on the untrusted guest: screen sizes outside 16x16..4096x4096 or odd ones are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GUEST_LIMITS, guestScreenProblem } from '../../../src/desktop/h264/transcoder.js';

test('guest screens: ordinary sizes pass, tiny, huge and odd ones are refused with a reason', () => {
  assert.equal(guestScreenProblem(1280, 800), null);
  assert.equal(guestScreenProblem(GUEST_LIMITS.maxWidth, GUEST_LIMITS.maxHeight), null);
  assert.match(guestScreenProblem(8, 800) ?? '', /smaller/);
  assert.match(guestScreenProblem(65535, 65535) ?? '', /larger/);
  assert.match(guestScreenProblem(GUEST_LIMITS.maxWidth + 2, 800) ?? '', /larger/);
  assert.match(guestScreenProblem(1281, 800) ?? '', /even/);
});
