// Hangar replay page script (browser, ES module): fetches a session recording (HREC1 frames) and feeds noVNC from
// it through a stand-in for the WebSocket, each frame at its recorded time divided by ?speed= (default 1). With
// ?until=MS playback stops at that point (the screen as it was then). noVNC's own messages go nowhere.
// Test hooks: #status[data-state] (loading, playing, done), document.body.dataset.position (ms reached).
/* global document, location, history, fetch, setTimeout, URLSearchParams, TextDecoder, performance */
import RFB from '/static/novnc/core/rfb.js';

const params = new URLSearchParams(location.search);
const token = params.get('token') || '';
const speed = Math.max(0.1, Math.min(64, Number(params.get('speed')) || 1));
const until = params.has('until') ? Number(params.get('until')) : Infinity;
history.replaceState(null, '', location.pathname);
const vmId = document.body.dataset.vm;
const recId = document.body.dataset.recording;
const statusEl = document.getElementById('status');
const positionEl = document.getElementById('position');
const show = (state) => { statusEl.dataset.state = state; statusEl.textContent = state; };

/** A channel noVNC accepts in place of a WebSocket (core/websock.js attach()). */
function channel() {
  return {
    binaryType: 'arraybuffer', protocol: 'binary', readyState: 'connecting',
    onopen: null, onmessage: null, onclose: null, onerror: null,
    send() { /* the recording already holds the server's answers */ },
    close() { this.readyState = 'closed'; if (this.onclose) this.onclose({ code: 1000, reason: '', wasClean: true }); },
  };
}

function frames(buf) {
  const magic = new TextDecoder().decode(new Uint8Array(buf, 0, 6));
  if (magic !== 'HREC1\n') throw new Error('not a Hangar recording');
  const view = new DataView(buf);
  const out = [];
  let off = 6;
  while (off + 8 <= buf.byteLength) {
    const ms = view.getUint32(off);
    const len = view.getUint32(off + 4);
    if (off + 8 + len > buf.byteLength) break;
    out.push({ ms, data: buf.slice(off + 8, off + 8 + len) });
    off += 8 + len;
  }
  return out;
}

async function play() {
  const res = await fetch(`/v1/vms/${encodeURIComponent(vmId)}/recordings/${recId}?token=${encodeURIComponent(token)}`, { cache: 'no-store', credentials: 'omit' });
  if (!res.ok) { show('refused'); return; }
  const list = frames(await res.arrayBuffer());
  const ch = channel();
  const rfb = new RFB(document.getElementById('screen'), ch, { shared: true });
  rfb.viewOnly = true;
  rfb.scaleViewport = false;
  ch.readyState = 'open';
  if (ch.onopen) ch.onopen({});
  show('playing');
  const t0 = performance.now();
  let i = 0;
  const step = () => {
    const now = (performance.now() - t0) * speed;
    while (i < list.length && list[i].ms <= now && list[i].ms <= until) {
      ch.onmessage({ data: list[i].data });
      document.body.dataset.position = String(list[i].ms);
      positionEl.textContent = `${(list[i].ms / 1000).toFixed(1)} s`;
      i++;
    }
    if (i >= list.length || list[i].ms > until) { show('done'); return; }
    setTimeout(step, Math.max(0, Math.min(250, (list[i].ms - now) / speed)));
  };
  step();
}

play().catch((e) => { show('error'); positionEl.textContent = String(e); });
