// The stand-alone H.264 page server's file mapping: only files under noVNC's core/ and vendor/ are served, never a
// path that climbs out (.., encoded or not) or any other folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { novncPath, H264_PAGE } from '../../../src/desktop/h264/page-server.js';

test('core/ and vendor/ files map into the package; anything else, or a climb out, does not', () => {
  assert.equal(novncPath('/core/rfb.js'), 'core/rfb.js');
  assert.equal(novncPath('/core/decoders/h264.js?x=1'), 'core/decoders/h264.js');
  assert.equal(novncPath('/vendor/pako/lib/zlib/inflate.js'), 'vendor/pako/lib/zlib/inflate.js');
  for (const bad of ['/package.json', '/core/../package.json', '/core/%2e%2e/package.json', '/core/', '/%E0%A4%A', '/app/ui.js', '//etc/passwd']) assert.equal(novncPath(bad), null, bad);
});

test('the page connects noVNC to /h264 and reports whether noVNC offers H.264', () => {
  assert.match(H264_PAGE, /\/h264'/);
  assert.match(H264_PAGE, /supportsWebCodecsH264Decode/);
});
