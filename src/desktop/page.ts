// The viewer page (pure rendering) and the headers it is served with. The page carries no token: its script reads
// the token from the address bar, then removes it from there (history.replaceState) and keeps it in the tab's
// sessionStorage, from where the "no token" page's resume.js takes it after a reload.
import { HANGAR_PREFIX, NOVNC_PREFIX } from './static.js';

/** Only this origin: scripts, styles, the WebSocket and fetches. Cursor images are data: URLs drawn by noVNC. */
export const VIEWER_CSP = [
  "default-src 'self'", "img-src 'self' data: blob:", "object-src 'none'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

/** Headers for every viewer page answer (the page URL holds a token: never cached, never sent as a Referer). */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': VIEWER_CSP,
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const head = (title: string): string => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${HANGAR_PREFIX}viewer.css">`;

export function renderViewerPage(vmId: string): string {
  const id = escapeHtml(vmId);
  return `${head(`Hangar — ${vmId}`)}
<link rel="modulepreload" href="${NOVNC_PREFIX}core/rfb.js">
<script type="module" src="${HANGAR_PREFIX}viewer.js"></script>
</head>
<body data-vm="${id}">
<header id="bar">
  <span id="vm">${id}</span>
  <span id="status" data-state="connecting" role="status" aria-live="polite">connecting</span>
  <span id="message" data-reason=""></span>
  <span id="retry"></span>
  <button id="reconnect" type="button" hidden>Reconnect</button>
  <button id="control" type="button" hidden>Request control</button>
  <details id="clip"><summary>Clipboard</summary><textarea id="clipboard" rows="4" cols="40" spellcheck="false"></textarea></details>
</header>
<main id="screen"></main>
</body>
</html>
`;
}

/** The replay page: replay.js feeds noVNC from the recording (token and speed from the address, as the viewer). */
export function renderReplayPage(vmId: string, recordingId: string): string {
  return `${head(`Hangar — replay ${recordingId}`)}
<script type="module" src="${HANGAR_PREFIX}replay.js"></script>
</head>
<body data-vm="${escapeHtml(vmId)}" data-recording="${escapeHtml(recordingId)}">
<header id="bar">
  <span id="vm">${escapeHtml(vmId)} — ${escapeHtml(recordingId)}</span>
  <span id="status" data-state="loading" role="status" aria-live="polite">loading</span>
  <span id="position">0.0 s</span>
</header>
<main id="screen"></main>
</body>
</html>
`;
}

/**
 * A refusal page. With `resumeVm` (the address had no token at all: typically a reload of a viewer whose script
 * removed it) the page carries resume.js, which goes back to the viewer with the token this tab kept, if any.
 */
export function renderErrorPage(title: string, message: string, opts: { resumeVm?: string } = {}): string {
  const resume = opts.resumeVm === undefined ? '' : `<script type="module" src="${HANGAR_PREFIX}resume.js"></script>\n`;
  const body = opts.resumeVm === undefined ? '<body>' : `<body data-vm="${escapeHtml(opts.resumeVm)}">`;
  return `${head(`Hangar — ${title}`)}
${resume}</head>
${body}
<header id="bar"><span id="status" data-state="refused">${escapeHtml(title)}</span> <span id="message">${escapeHtml(message)}</span></header>
</body>
</html>
`;
}
