// The Server-Sent Events parser on awkward input: every line ending, multi-line data, comments, any split.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser } from '../../src/cli/sse.js';

test('SseParser: CRLF and CR line ends, multi-line data, comments, an event split anywhere', () => {
  const text = ': hello\r\nid: 1\r\nevent: a\r\ndata: one\r\ndata: two\r\n\r\nid: 2\rdata: {"x":1}\r\rdata:no-space\n\n';
  const whole = new SseParser().push(text);
  assert.deepEqual(whole, [
    { id: '1', event: 'a', data: 'one\ntwo' },
    { id: '2', event: 'message', data: '{"x":1}' },
    { id: '2', event: 'message', data: 'no-space' },
  ]);
  for (let cut = 1; cut < text.length; cut++) {
    const p = new SseParser();
    assert.deepEqual([...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))], whole, `split at ${cut}`);
  }
  assert.deepEqual(new SseParser().push('event: only\n\n'), [], 'no data, no event');
});
