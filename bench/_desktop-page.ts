// The in-page half of bench/desktop: a script injected into every page the bench opens (before the page's own
// scripts), and the stock viewer page. The script counts the bytes every WebSocket receives (it wraps the page's
// WebSocket constructor) and gives the bench `window.__bench`: key-to-pixel timing (dispatch a key on noVNC's canvas,
// then poll the canvas pixels of the cursor cell once per requestAnimationFrame until they change) and frame
// counting (per animation frame, whether a region of the canvas changed). It is plain JS in a string: the page runs
// it, the project compiles without the DOM library.

export const PAGE_PROBE = String.raw`(() => {
  // A function, not a subclass: it returns the native socket, whose prototype noVNC inspects (Websock.attach).
  const Native = window.WebSocket;
  let bytes = 0;
  function CountingWebSocket(...args) {
    const ws = new Native(...args);
    ws.addEventListener('message', (e) => {
      const d = e.data;
      bytes += typeof d === 'string' ? d.length : (d.byteLength ?? d.size ?? 0);
    });
    return ws;
  }
  CountingWebSocket.prototype = Native.prototype;
  for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) CountingWebSocket[k] = Native[k];
  window.WebSocket = CountingWebSocket;
  const canvas = () => document.querySelector('#screen canvas');
  const grab = (r) => canvas().getContext('2d').getImageData(r.x, r.y, r.w, r.h).data;
  const differs = (a, b) => {
    for (let i = 0; i < a.length; i += 4) if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) return true;
    return false;
  };
  const KEYS = { x: ['x', 'KeyX'], BackSpace: ['Backspace', 'Backspace'] };
  const send = (name) => {
    const [key, code] = KEYS[name];
    const c = canvas();
    for (const type of ['keydown', 'keyup']) c.dispatchEvent(new KeyboardEvent(type, { key, code, bubbles: true, cancelable: true }));
  };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  window.__bench = {
    bytes: () => bytes,
    ready: () => { const c = canvas(); return !!c && c.width > 0 && c.height > 0; },
    /** The box of the pixels a key changes on the whole canvas (waits waitMs for the echo), or null. */
    async bbox(name, waitMs) {
      const c = canvas();
      const all = { x: 0, y: 0, w: c.width, h: c.height };
      const before = grab(all);
      send(name);
      await sleep(waitMs);
      const after = grab(all);
      let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1;
      for (let y = 0; y < all.h; y++) for (let x = 0; x < all.w; x++) {
        const i = (y * all.w + x) * 4;
        if (before[i] !== after[i] || before[i + 1] !== after[i + 1] || before[i + 2] !== after[i + 2]) {
          if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
        }
      }
      return x1 < 0 ? null : { x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1 };
    },
    /** ms from dispatching the key to the first animation frame whose canvas differs in r (-1: none in timeoutMs). */
    key(name, r, timeoutMs) {
      const before = grab(r);
      const t0 = performance.now();
      send(name);
      return new Promise((resolve) => {
        const tick = () => {
          if (differs(grab(r), before)) return resolve(performance.now() - t0);
          if (performance.now() - t0 > timeoutMs) return resolve(-1);
          requestAnimationFrame(tick);
        };
        requestAnimationFrame(tick);
      });
    },
    /** For ms: animation frames whose canvas region r differs from the frame before, and the bytes received. */
    frames(r, ms) {
      let prev = grab(r);
      let changed = 0, rafs = 0;
      const t0 = performance.now();
      const b0 = bytes;
      return new Promise((resolve) => {
        const tick = () => {
          const cur = grab(r);
          if (differs(cur, prev)) changed++;
          prev = cur;
          rafs++;
          const t = performance.now() - t0;
          if (t >= ms) resolve({ changed, rafs, ms: t, bytes: bytes - b0 });
          else requestAnimationFrame(tick);
        };
        requestAnimationFrame(tick);
      });
    },
  };
})();`;

/**
 * The stock viewer: noVNC's RFB with its defaults (what vnc_lite.html does: connect to the page's host and the
 * websockify path; no quality, compression or scaling settings), served plainly by websockify's --web.
 */
export const STOCK_PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>stock noVNC</title>
<style>body { margin: 0; background: dimgrey; } #screen { flex: 1; overflow: hidden; }</style></head>
<body><div id="status">connecting</div><div id="screen"></div>
<script type="module">
import RFB from './core/rfb.js';
const rfb = new RFB(document.getElementById('screen'), 'ws://' + location.host + '/websockify');
rfb.addEventListener('connect', () => { document.getElementById('status').dataset.state = 'connected'; });
rfb.addEventListener('disconnect', () => { document.getElementById('status').dataset.state = 'disconnected'; });
</script></body></html>
`;
