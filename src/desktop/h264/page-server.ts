// A stand-alone H.264 viewer for the prototype (bench/h264 and its test): an HTTP server on the loopback that serves
// a noVNC page with noVNC's defaults (noVNC offers encoding 50 when WebCodecs decodes H.264) and the bundled noVNC
// files, and a WebSocket at /h264 whose every connection gets a transcoder to one RFB server (host:port). Not the
// controller's viewer: no token, loopback only; the product's viewer would route through the bridge instead.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { extname, join, normalize } from 'node:path';
import { WebSocketServer } from 'ws';
import { novncDir } from '../static.js';
import { transcode, type Transcoder, type TranscoderOptions } from './transcoder.js';

/** The page: #status gets data-state (connected / disconnected) and data-webcodecs (whether noVNC offers H.264). */
export const H264_PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>H.264 noVNC</title>
<style>body { margin: 0; background: dimgrey; } #screen { flex: 1; overflow: hidden; }</style></head>
<body><div id="status">connecting</div><div id="screen"></div>
<script type="module">
import RFB from './core/rfb.js';
import { supportsWebCodecsH264Decode } from './core/util/browser.js';
const status = document.getElementById('status');
status.dataset.webcodecs = String(supportsWebCodecsH264Decode);
const rfb = new RFB(document.getElementById('screen'), 'ws://' + location.host + '/h264');
rfb.addEventListener('connect', () => { status.dataset.state = 'connected'; });
rfb.addEventListener('disconnect', (e) => { status.dataset.state = 'disconnected'; console.error('disconnected', JSON.stringify(e.detail)); });
</script></body></html>
`;

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript' };

/** Which file of the noVNC package a request path names, or null (only core/ and vendor/, no '..'). */
export function novncPath(urlPath: string): string | null {
  let p: string;
  try { p = normalize(decodeURIComponent(urlPath.split('?')[0]!)); } catch { return null; }
  return /^\/(core|vendor)\/[\w.-]+(\/[\w.-]+)*$/.test(p) && !p.includes('..') ? p.slice(1) : null;
}

export interface H264PageServer {
  port: number;
  transcoders: Transcoder[];
  close(): Promise<void>;
}

export async function startH264PageServer(target: { host: string; port: number }, opts: TranscoderOptions = {}): Promise<H264PageServer> {
  const root = novncDir();
  const srv = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0]!;
    if (url === '/' || url === '/h264.html') { res.writeHead(200, { 'content-type': 'text/html' }).end(H264_PAGE); return; }
    const p = novncPath(url);
    if (!p) { res.writeHead(404).end(); return; }
    try { res.writeHead(200, { 'content-type': TYPES[extname(p)] ?? 'application/octet-stream' }).end(readFileSync(join(root, p))); } catch { res.writeHead(404).end(); }
  });
  const transcoders: Transcoder[] = [];
  const wss = new WebSocketServer({ server: srv, path: '/h264', perMessageDeflate: false });
  wss.on('connection', (ws) => {
    const guest = net.connect(target.port, target.host);
    guest.setNoDelay(true);
    transcoders.push(transcode(guest, ws, opts));
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as net.AddressInfo).port,
    transcoders,
    close: async () => {
      for (const t of transcoders) t.close();
      wss.close();
      await new Promise((r) => srv.close(r));
    },
  };
}
