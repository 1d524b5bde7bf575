// The computer-use service against a real desktop on the host loopback (Xvfb + x11vnc -xkb + an xterm running
// `tee FILE`, test/support/rfb.ts): screenshots of the right size that are not one colour, typed text (Unicode too)
// arriving in the xterm, key combinations, clicks, the clipboard both ways. Skipped without the desktop tools.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { parseAction } from '../../src/control/actions.js';
import { ComputerService } from '../../src/control/computer.js';
import { skipUnlessDesktopTools, startDesktop, type Desktop } from '../support/rfb.js';

const skip = await skipUnlessDesktopTools();

async function waitFor(check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('computer use on a host desktop', { skip }, () => {
  let desk: Desktop;
  let dir: string;
  let svc: ComputerService;
  let dials = 0;
  let lastSocket: net.Socket | null = null;
  const typed = (): string => readFileSync(join(dir, 'typed.txt'), 'utf8');
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hangar-control-'));
    desk = await startDesktop({ width: 800, height: 600, typedFile: join(dir, 'typed.txt') });
    svc = new ComputerService({
      dial: () => { dials++; return new Promise((res, rej) => { const s = net.connect(desk.port, '127.0.0.1', () => { lastSocket = s; res(s); }); s.once('error', rej); }); },
      idleMs: 2_000,
    });
  });
  after(async () => { svc?.close(); await desk?.stop(); rmSync(dir, { recursive: true, force: true }); });

  const act = (body: object): ReturnType<ComputerService['run']> => svc.run('vm-1', parseAction(body));

  test('a screenshot is a PNG of the screen size and not one colour', async () => {
    const r = await act({ action: 'screenshot' });
    const png = PNG.sync.read(Buffer.from((r.image as { data: string }).data, 'base64'));
    assert.equal(png.width, 800);
    assert.equal(png.height, 600);
    const colours = new Set<number>();
    for (let i = 0; i < png.data.length; i += 4 * 97) colours.add(png.data.readUInt32BE(i));
    assert.ok(colours.size > 1, 'more than one colour');
    const size = await act({ action: 'screen_size' });
    assert.deepEqual([size.width, size.height], [800, 600]);
  });

  test('typing (Unicode too) and Return reach the xterm', async () => {
    await act({ action: 'left_click', coordinate: [100, 100] });
    await act({ action: 'type', text: 'hello World žluťoučký 日本' });
    await act({ action: 'key', text: 'Return' });
    await waitFor(() => typed().includes('\n'));
    assert.equal(typed().trim(), 'hello World žluťoučký 日本');
  });

  test('a region and a scale', async () => {
    const r = await act({ action: 'screenshot', region: [0, 0, 200, 100], scale: 0.5, format: 'jpeg' });
    assert.deepEqual([r.width, r.height], [100, 50]);
    assert.equal((r.image as { media_type: string }).media_type, 'image/jpeg');
  });

  test('one connection for many actions, dropped after idle', async () => {
    const before = dials;
    await act({ action: 'mouse_move', coordinate: [10, 10] });
    const pos = await act({ action: 'cursor_position' });
    assert.deepEqual([pos.x, pos.y], [10, 10]);
    assert.equal(dials, before);
    await waitFor(() => svc.connected().length === 0, 5_000);
  });

  test('shutdown (before a VM is saved): the server closes its end before it resolves, and the next action reconnects', async () => {
    await act({ action: 'mouse_move', coordinate: [20, 20] });
    const sock = lastSocket!;
    let serverEnded = false;
    sock.once('end', () => { serverEnded = true; });
    const t0 = Date.now();
    await svc.shutdown('vm-1', 5_000);
    assert.ok(serverEnded, 'x11vnc closed its end (our FIN reached it and it let the client go)');
    assert.ok(Date.now() - t0 < 5_000, 'not the timeout');
    assert.deepEqual(svc.connected(), []);
    const before = dials;
    await act({ action: 'cursor_position' });
    assert.equal(dials, before + 1);
  });
});
