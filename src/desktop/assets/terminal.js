// Hangar terminal page script (browser, ES module): xterm.js on the VM's PTY WebSocket (/v1/vms/:id/terminal/ws).
// Keystrokes go as binary stdin messages, size changes as {"type":"resize"}; output arrives as binary messages whose
// first byte is the stream (1 stdout, 2 stderr). Test hooks: window.hangarTerm (the Terminal), #status[data-state].
/* global window, document, location, history, WebSocket, URLSearchParams, TextEncoder */
import { Terminal } from '/static/xterm/xterm.mjs';
import { FitAddon } from '/static/xterm/addon-fit.mjs';

const vmId = document.body.dataset.vm;
const token = new URLSearchParams(location.search).get('token') || '';
history.replaceState(null, '', location.pathname); // the token leaves the address bar and the history

const statusEl = document.getElementById('status');
const messageEl = document.getElementById('message');
const show = (state, message = '') => { statusEl.dataset.state = state; statusEl.textContent = state; messageEl.textContent = message; };

const term = new Terminal({ cursorBlink: true, scrollback: 5000, fontFamily: 'ui-monospace, monospace' });
const fit = new FitAddon();
term.loadAddon(fit);
term.open(document.getElementById('term'));
fit.fit();
window.hangarTerm = term;

const q = new URLSearchParams({ token, cols: String(term.cols), rows: String(term.rows) });
const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/v1/vms/${encodeURIComponent(vmId)}/terminal/ws?${q}`);
ws.binaryType = 'arraybuffer';
const enc = new TextEncoder();

ws.onopen = () => show('connected');
ws.onmessage = (ev) => {
  if (typeof ev.data !== 'string') {
    term.write(new Uint8Array(ev.data, 1));
    return;
  }
  const m = JSON.parse(ev.data);
  if (m.type === 'started') term.focus();
  else if (m.type === 'exit') show('closed', `the shell exited (${m.signal ? `signal ${m.signal}` : `code ${m.code}`})`);
  else if (m.type === 'error') show('closed', `${m.code}: ${m.message}`);
};
ws.onclose = (ev) => { if (statusEl.dataset.state !== 'closed') show(ev.code === 1006 ? 'refused' : 'closed', ev.reason || `connection closed (${ev.code})`); };
term.onData((d) => { if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d)); });
term.onBinary((d) => { if (ws.readyState === WebSocket.OPEN) ws.send(Uint8Array.from(d, (c) => c.charCodeAt(0))); });
term.onResize(({ cols, rows }) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols, rows })); });
window.addEventListener('resize', () => fit.fit());
