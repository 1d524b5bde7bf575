// A tiny web service with a login form, for the "log in once" test (profile.int.test.ts), run INSIDE the test's
// world namespace (test/support/world.ts) on the world's web address: never a real address. GET / shows the form,
// or "welcome" with the user's name when the request carries a session cookie it issued; POST /login with the right
// user and password issues one as a PERSISTENT cookie (Max-Age: a day), so a browser keeps it on disk; GET /stats
// says how many logins there were and how many pages were served to a logged-in browser. Test code only.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

const [address = '203.0.113.10', port = '8080'] = process.argv.slice(2);
const USER = 'alice';
const PASS = 'wonderland';
const sessions = new Map<string, string>();
const stats = { logins: 0, authed: 0, forms: 0 };

const page = (title: string, body: string): string => `<!doctype html><html><head><title>${title}</title></head><body>${body}</body></html>`;
const FORM = page('login', '<form method="post" action="/login"><input id="user" name="user"><input id="pass" name="pass" type="password"><button id="go" type="submit">Log in</button></form>');

createServer((req, res) => {
  const cookie = /(?:^|;\s*)hsess=([0-9a-f]{32})/.exec(req.headers.cookie ?? '')?.[1];
  const user = cookie ? sessions.get(cookie) : undefined;
  if (req.method === 'GET' && req.url === '/stats') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(stats));
    return;
  }
  if (req.method === 'POST' && req.url === '/login') {
    let body = '';
    req.on('data', (d: Buffer) => { body += d.toString(); });
    req.on('end', () => {
      const f = new URLSearchParams(body);
      if (f.get('user') !== USER || f.get('pass') !== PASS) {
        res.writeHead(401, { 'content-type': 'text/html' }).end(FORM);
        return;
      }
      const token = randomBytes(16).toString('hex');
      sessions.set(token, USER);
      stats.logins++;
      res.writeHead(303, { location: '/', 'set-cookie': `hsess=${token}; Max-Age=86400; Path=/; HttpOnly; SameSite=Lax` }).end();
    });
    return;
  }
  if (req.method === 'GET' && req.url === '/') {
    res.setHeader('content-type', 'text/html');
    res.setHeader('cache-control', 'no-store');
    if (user) { stats.authed++; res.end(page('welcome', `<p id="who">${user}</p>`)); } else { stats.forms++; res.end(FORM); }
    return;
  }
  res.writeHead(404).end();
}).listen(Number(port), address, () => { process.stdout.write('login ready\n'); });
