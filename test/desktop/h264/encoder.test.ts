// The encoder's argument plan (pure): raw RGBA in at the guest's size, libx264 ultrafast/zerolatency with no
// B-frames, FLV out on stdout; odd, tiny or non-integer sizes and bad quality values are refused before spawning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encoderArgs, encoderSkipReason } from '../../../src/desktop/h264/encoder.js';

const after = (args: string[], flag: string): string | undefined => args[args.indexOf(flag) + 1];

test('the plan: rawvideo rgba of the screen size in, x264 zerolatency without B-frames, FLV on stdout', () => {
  const a = encoderArgs({ width: 1280, height: 800, crf: 30, threads: 2 });
  assert.equal(after(a, '-f'), 'rawvideo');
  assert.equal(after(a, '-pix_fmt'), 'rgba');
  assert.equal(after(a, '-video_size'), '1280x800');
  assert.equal(after(a, '-c:v'), 'libx264');
  assert.equal(after(a, '-preset'), 'ultrafast');
  assert.equal(after(a, '-tune'), 'zerolatency');
  assert.equal(after(a, '-bf'), '0');
  assert.equal(after(a, '-crf'), '30');
  assert.equal(after(a, '-threads'), '2');
  assert.deepEqual(a.slice(-3), ['-f', 'flv', 'pipe:1']);
  assert.equal(after(a, '-flush_packets'), '1');
});

test('sizes H.264 4:2:0 cannot take and quality out of range are refused', () => {
  for (const [width, height] of [[1279, 800], [1280, 801], [8, 8], [100.5, 100]] as const) assert.throws(() => encoderArgs({ width, height }), /even screen size/);
  assert.throws(() => encoderArgs({ width: 64, height: 64, crf: 52 }), /crf/);
});

test('the skip reason names ffmpeg when it is missing', () => {
  assert.match(encoderSkipReason('/nonexistent/ffmpeg') ?? '', /ffmpeg/);
});
