// The servers of the test "world" (test/support/world.ts), run as one process INSIDE the world namespace:
// HTTP (:80) and HTTPS (:443, test CA) that answer with the peer address they saw, a UDP sink (:9, :443), a DNS server (:53) for the
// *.test names, an HTTP CONNECT proxy and a SOCKS5 proxy (both with credentials, both connecting out from their
// own address so the web server can tell a proxied request). Argument: a JSON config. Test code only.
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer as createHttp, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { connect, createServer as createTcp, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';

export interface WorldServerConfig {
  web: string;
  names: Record<string, string>;
  dns: string;
  httpProxy: { address: string; port: number; user: string; pass: string };
  socksProxy: { address: string; port: number; user: string; pass: string };
  tls: { cert: string; key: string };
}

const cfg = JSON.parse(process.argv[2]!) as WorldServerConfig;
const counts = { dnsQueries: 0, proxyConnects: 0, socksConnects: 0 };

function answer(req: IncomingMessage, res: ServerResponse): void {
  if (req.method === 'PUT' || req.method === 'POST') {
    let n = 0;
    req.on('data', (d: Buffer) => { n += d.length; });
    req.on('end', () => res.end(JSON.stringify({ received: n })));
    return;
  }
  if (req.url?.startsWith('/bytes/')) {
    const n = Math.min(Number(req.url.slice(7)) || 0, 1 << 30);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n) });
    const chunk = Buffer.alloc(256 * 1024, 120);
    let left = n;
    const pump = (): void => {
      while (left > 0) {
        const c = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= c.length;
        if (!res.write(c)) { res.once('drain', pump); return; }
      }
      res.end();
    };
    pump();
    return;
  }
  if (req.url === '/counts') { res.end(JSON.stringify(counts)); return; }
  if (req.url === '/udp') { res.end(JSON.stringify(datagrams)); return; }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ peer: req.socket.remoteAddress?.replace(/^::ffff:/, ''), host: req.headers.host ?? null }));
}

createHttp(answer).listen(80, '0.0.0.0');
createHttps({ cert: readFileSync(cfg.tls.cert), key: readFileSync(cfg.tls.key) }, answer).listen(443, '0.0.0.0');

// A UDP sink on 9 (discard) and 443 (where QUIC would go): what arrived, by payload (the uplink's NAT hides the
// guest's address, so tests tell datagrams apart by what they carry). GET /udp lists the last 200.
const datagrams: { payload: string; from: string; port: number }[] = [];
for (const port of [9, 443]) {
  const u = createSocket('udp4');
  u.on('message', (msg, rinfo) => {
    datagrams.push({ payload: msg.toString('utf8', 0, Math.min(msg.length, 200)), from: rinfo.address, port });
    if (datagrams.length > 200) datagrams.shift();
  });
  u.bind(port, '0.0.0.0');
}

const dns = createSocket('udp4');
dns.on('message', (msg, rinfo) => {
  counts.dnsQueries++;
  let q: dnsPacket.Packet;
  try { q = dnsPacket.decode(msg); } catch { return; }
  const question = q.questions?.[0];
  const name = question?.name.toLowerCase();
  const addr = name ? cfg.names[name] : undefined;
  const answers: dnsPacket.Answer[] = addr && question?.type === 'A' ? [{ type: 'A', name: question.name, ttl: 60, class: 'IN', data: addr }] : [];
  const rcode = name && name in cfg.names ? 'NOERROR' : 'NXDOMAIN';
  dns.send(dnsPacket.encode({ id: q.id, type: 'response', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (rcode === 'NXDOMAIN' ? 3 : 0), questions: q.questions, answers }), rinfo.port, rinfo.address);
});
dns.bind(53, cfg.dns);

function basicOk(header: string | undefined, user: string, pass: string): boolean {
  return header === `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
}

// HTTP CONNECT proxy.
const px = cfg.httpProxy;
const httpProxy = createHttp((_req, res) => { res.writeHead(405); res.end(); });
httpProxy.on('connect', (req: IncomingMessage, client: Socket) => {
  if (!basicOk(req.headers['proxy-authorization'], px.user, px.pass)) {
    client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="world"\r\n\r\n');
    return;
  }
  counts.proxyConnects++;
  const [host, port] = (req.url ?? '').split(':');
  const up = connect({ host: host!, port: Number(port), localAddress: px.address }, () => {
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    up.pipe(client); client.pipe(up);
  });
  up.on('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'));
  client.on('error', () => up.destroy());
});
httpProxy.listen(px.port, px.address);

// SOCKS5 with username/password (RFC 1928, 1929); CONNECT to IPv4 or a domain name only.
const sp = cfg.socksProxy;
createTcp((c) => {
  let buf = Buffer.alloc(0);
  let stage = 0;
  c.on('error', () => undefined);
  const onData = (d: Buffer): void => {
    buf = Buffer.concat([buf, d]);
    if (stage === 0 && buf.length >= 2 && buf.length >= 2 + buf[1]!) {
      const methods = [...buf.subarray(2, 2 + buf[1]!)];
      buf = buf.subarray(2 + buf[1]!);
      if (!methods.includes(2)) { c.end(Buffer.from([5, 0xff])); return; }
      c.write(Buffer.from([5, 2]));
      stage = 1;
    }
    if (stage === 1 && buf.length >= 2) {
      const ul = buf[1]!;
      if (buf.length < 3 + ul) return;
      const pl = buf[2 + ul]!;
      if (buf.length < 3 + ul + pl) return;
      const user = buf.subarray(2, 2 + ul).toString();
      const pass = buf.subarray(3 + ul, 3 + ul + pl).toString();
      buf = buf.subarray(3 + ul + pl);
      if (user !== sp.user || pass !== sp.pass) { c.end(Buffer.from([1, 1])); return; }
      c.write(Buffer.from([1, 0]));
      stage = 2;
    }
    if (stage === 2 && buf.length >= 5) {
      const atyp = buf[3]!;
      let host: string;
      let off: number;
      if (atyp === 1) { if (buf.length < 10) return; host = [...buf.subarray(4, 8)].join('.'); off = 8; } else if (atyp === 3) {
        const l = buf[4]!;
        if (buf.length < 7 + l) return;
        host = buf.subarray(5, 5 + l).toString(); off = 5 + l;
      } else { c.end(Buffer.from([5, 8, 0, 1, 0, 0, 0, 0, 0, 0])); return; }
      const port = buf.readUInt16BE(off);
      const rest = buf.subarray(off + 2);
      stage = 3;
      c.off('data', onData);
      counts.socksConnects++;
      const up = connect({ host, port, localAddress: sp.address }, () => {
        c.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
        if (rest.length) up.write(rest);
        up.pipe(c); c.pipe(up);
      });
      up.on('error', () => c.end(Buffer.from([5, 5, 0, 1, 0, 0, 0, 0, 0, 0])));
    }
  };
  c.on('data', onData);
}).listen(sp.port, sp.address);

process.stdout.write('world ready\n');
