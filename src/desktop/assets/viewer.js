// Hangar viewer page script (browser, ES module). Connects noVNC to /v1/vms/:id/vnc, explains disconnections
// from /v1/vms/:id/viewer-status, reconnects with backoff while the token is valid, and syncs the clipboard.
// Test hooks: window.hangarRfb (the RFB object), window.hangarQuality (the adaptive quality policy), #status[data-state], #message[data-reason].
/* global window, document, location, history, fetch, setTimeout, clearTimeout, setInterval, WebSocket, URLSearchParams, sessionStorage, crypto */
import RFB from '/static/novnc/core/rfb.js';
import { adaptQuality } from './quality.js';

const vmId = document.body.dataset.vm;
const token = new URLSearchParams(location.search).get('token') || '';
// The token leaves the address bar, the history and any later Referer. This tab keeps it in sessionStorage (never
// sent anywhere, gone with the tab) so that a reload can come back: resume.js on the "no token" page finds it.
history.replaceState(null, '', location.pathname);
const STORED = `hangar-viewer:${vmId}`;
try {
  if (token) sessionStorage.setItem(STORED, token);
} catch {
  // storage disabled: a reload then needs a fresh link
}
const forget = () => { try { sessionStorage.removeItem(STORED); } catch { /* nothing stored */ } };

const el = (id) => document.getElementById(id);
const statusEl = el('status');
const messageEl = el('message');
const retryEl = el('retry');
const reconnectBtn = el('reconnect');
const clipboard = el('clipboard');
const screen = el('screen');

const CLOSE_IDLE = 4000;
const CLOSE_VM_GONE = 4001;
// Encoder settings asked of the VM's VNC server (tight): JPEG quality and zlib level, from bench/desktop.
const QUALITY = 6;
const COMPRESSION = 2;
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
const q = `token=${encodeURIComponent(token)}`;
const base = `/v1/vms/${encodeURIComponent(vmId)}`;
// This page's viewer id: who asks for and holds control among several viewers of the VM (never shown to others).
const viewerId = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('');
const wsUrl = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${base}/vnc?${q}&viewer=${viewerId}`;
const controlBtn = el('control');
let inControl = false;

let attempt = 0;
let retryTimer = null;
let rfb = null;

function show(state, message = '', reason = '') {
  statusEl.dataset.state = state;
  statusEl.textContent = state;
  messageEl.textContent = message;
  messageEl.dataset.reason = reason;
  reconnectBtn.hidden = state !== 'disconnected';
}

function scheduleRetry() {
  const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
  attempt += 1;
  retryEl.textContent = `retrying in ${Math.round(delay / 1000)} s`;
  retryTimer = setTimeout(connect, delay);
}

function stopRetrying() {
  clearTimeout(retryTimer);
  retryTimer = null;
  retryEl.textContent = '';
}

/** Asks the controller why the connection is gone; decides whether trying again can help. */
async function explain(close) {
  if (close && close.code === CLOSE_IDLE) return show('disconnected', 'Disconnected after a period of inactivity', 'idle');
  let res;
  try {
    res = await fetch(`${base}/viewer-status?${q}`, { cache: 'no-store', credentials: 'omit' });
  } catch {
    show('disconnected', 'The controller does not answer', 'offline');
    return scheduleRetry();
  }
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) {
    forget(); // a reload could not use it either
    const expired = body.error && body.error.details && body.error.details.reason === 'expired';
    return show('disconnected', expired ? 'The viewer link has expired: ask for a new one' : 'The viewer link is not valid', expired ? 'expired' : 'invalid');
  }
  if (res.status === 404) {
    forget();
    return show('disconnected', 'VM not found', 'not_found');
  }
  if (!res.ok) {
    show('disconnected', `The controller answered ${res.status}`, 'error');
    return scheduleRetry();
  }
  const messages = {
    paused: 'VM is paused', stopped: 'VM is stopped', stopping: 'VM is stopped', failed: 'VM has failed',
    creating: 'VM is starting', booting: 'VM is starting', destroyed: 'VM not found',
  };
  if (body.state === 'destroyed') return show('disconnected', messages.destroyed, 'not_found');
  if (messages[body.state]) show('disconnected', messages[body.state], body.state === 'stopping' ? 'stopped' : body.state);
  else if (body.viewers >= body.maxViewers) show('disconnected', `The VM already has ${body.viewers} viewers (the limit)`, 'limit');
  else if (close && close.code === CLOSE_VM_GONE) show('disconnected', close.reason || 'The VM is no longer running', 'vm_gone');
  else show('disconnected', 'The connection to the VM desktop was lost', 'lost');
  // Paused, stopped, booting and lost connections can come back: keep trying (the token is checked every time).
  return scheduleRetry();
}

function connect() {
  stopRetrying();
  const old = rfb;
  rfb = null;
  if (old) old.disconnect();
  show('connecting');
  const ws = new WebSocket(wsUrl, ['binary']);
  let close = null;
  let refused = false; // the RFB server itself said no: retrying cannot help
  // Registered before noVNC attaches its own handlers, so the close code is known when 'disconnect' fires.
  ws.addEventListener('close', (e) => { close = { code: e.code, reason: e.reason }; });
  // Quality adapts to the viewer's throughput (quality.js); from QUALITY down when the link is slow, never above it.
  let current = null;
  window.hangarQuality = adaptQuality(ws, (level) => { if (current) current.qualityLevel = level; }, { max: QUALITY });
  current = new RFB(screen, ws, { shared: true });
  rfb = current;
  window.hangarRfb = current;
  current.qualityLevel = QUALITY;
  current.compressionLevel = COMPRESSION;
  current.scaleViewport = true;
  current.resizeSession = false;
  current.focusOnClick = true;
  current.addEventListener('connect', () => {
    attempt = 0;
    show('connected');
    current.focus();
    void pollControl();
  });
  current.addEventListener('disconnect', () => {
    if (rfb !== current) return; // replaced by a newer connection
    rfb = null;
    if (refused) return;
    setTimeout(() => { void explain(close); }, 0);
  });
  current.addEventListener('securityfailure', (e) => {
    refused = true;
    show('disconnected', `The VM desktop refused the connection: ${e.detail.reason || e.detail.status}`, 'security');
  });
  current.addEventListener('credentialsrequired', () => {
    refused = true;
    show('disconnected', 'The VM desktop asks for a VNC password (Hangar desktops use none)', 'security');
    current.disconnect();
  });
  current.addEventListener('clipboard', (e) => { clipboard.value = e.detail.text; });
}

/** Whether this viewer is in control (its input reaches the VM; the bridge drops it otherwise). */
async function pollControl() {
  const res = await fetch(`${base}/control?${q}&viewer=${viewerId}`, { cache: 'no-store', credentials: 'omit' }).catch(() => null);
  if (!res || !res.ok) return;
  const st = await res.json();
  inControl = st.inControl === true;
  if (rfb) rfb.viewOnly = !inControl;
  controlBtn.hidden = false;
  controlBtn.textContent = inControl ? 'In control' : st.waiting ? 'Waiting for control' : 'Request control';
  controlBtn.disabled = inControl || st.waiting;
  document.body.dataset.control = inControl ? 'yes' : 'no';
}
controlBtn.addEventListener('click', async () => {
  await fetch(`${base}/control?${q}`, { method: 'POST', credentials: 'omit', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'request', viewer: viewerId }) }).catch(() => null);
  void pollControl();
});
setInterval(() => { if (rfb) void pollControl(); }, 2000);

clipboard.addEventListener('input', () => { if (rfb) rfb.clipboardPasteFrom(clipboard.value); });
reconnectBtn.addEventListener('click', () => { attempt = 0; connect(); });

if (token) connect();
else show('disconnected', 'No viewer token in the address', 'invalid');
