// The network policy: entries classified and checked once, defaults from a base, the DNS verdicts, the proxy
// URL parsed and its password never shown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHangarError } from '../../../src/errors.js';
import { classifyEntry, DEFAULT_POLICY, nameVerdict, normalisePolicy, parseProxy, redactPolicy } from '../../../src/net/egress/policy.js';

const invalid = (f: () => unknown, field: string): void => assert.throws(f, (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT') && String(e.details.field).startsWith(field));

test('entries: an address is a /32, a CIDR is canonical, names are lower-cased, "*.domain" is a suffix', () => {
  assert.deepEqual(classifyEntry('203.0.113.7', 'x'), { kind: 'cidr', cidr: '203.0.113.7/32' });
  assert.deepEqual(classifyEntry('10.0.0.0/8', 'x'), { kind: 'cidr', cidr: '10.0.0.0/8' });
  assert.deepEqual(classifyEntry('API.Example.com.', 'x'), { kind: 'name', name: 'api.example.com' });
  assert.deepEqual(classifyEntry('*.example.com', 'x'), { kind: 'suffix', suffix: 'example.com' });
  invalid(() => classifyEntry('10.0.0.1/8', 'allow'), 'allow');
  invalid(() => classifyEntry('exa mple.com', 'allow'), 'allow');
  invalid(() => classifyEntry('*.', 'allow'), 'allow');
  invalid(() => classifyEntry('', 'allow'), 'allow');
});

test('normalisePolicy fills from a base, keeps what a partial input does not name, refuses bad fields', () => {
  const p = normalisePolicy({ egress: { mode: 'allowlist', allow: ['allowed.test', 'allowed.test', '*.cdn.test'] }, group: 'team-1' });
  assert.deepEqual(p.egress.allow, ['allowed.test', '*.cdn.test']);
  assert.equal(p.group, 'team-1');
  const q = normalisePolicy({ egress: { mode: 'internet' } }, p);
  assert.deepEqual(q.egress.allow, ['allowed.test', '*.cdn.test'], 'a PATCH keeps the allow list it does not name');
  assert.equal(q.group, 'team-1');
  assert.equal(normalisePolicy({ group: null }, p).group, null);
  assert.deepEqual(normalisePolicy(undefined), DEFAULT_POLICY);
  invalid(() => normalisePolicy({ egress: { mode: 'all' as never } }), 'egress.mode');
  invalid(() => normalisePolicy({ group: 'Bad Group' }), 'group');
  invalid(() => normalisePolicy({ limits: { bandwidthMbit: 0 } }), 'limits.bandwidthMbit');
  invalid(() => normalisePolicy({ egress: { proxy: 'ftp://h:1' } }), 'egress.proxy');
  invalid(() => normalisePolicy({ egress: { allow: Array.from({ length: 300 }, (_, i) => `h${i}.test`) } }), 'egress.allow');
});

test('DNS verdicts: deny wins, none resolves nothing, internet everything else, allowlist only its names', () => {
  const allow = normalisePolicy({ egress: { mode: 'allowlist', allow: ['allowed.test', '*.cdn.test', '203.0.113.0/24'], deny: ['bad.cdn.test'] } }).egress;
  assert.deepEqual(nameVerdict(allow, 'allowed.test'), { allowed: true });
  assert.deepEqual(nameVerdict(allow, 'ALLOWED.test.'), { allowed: true });
  assert.deepEqual(nameVerdict(allow, 'img.cdn.test'), { allowed: true });
  assert.deepEqual(nameVerdict(allow, 'cdn.test'), { allowed: false, reason: 'not-allowed' }, '*.cdn.test names subdomains only');
  assert.deepEqual(nameVerdict(allow, 'bad.cdn.test'), { allowed: false, reason: 'denied' });
  assert.deepEqual(nameVerdict(allow, 'other.test'), { allowed: false, reason: 'not-allowed' });
  assert.deepEqual(nameVerdict(allow, 'evil-allowed.test'), { allowed: false, reason: 'not-allowed' });
  const net = normalisePolicy({ egress: { mode: 'internet', deny: ['*.tracker.test'] } }).egress;
  assert.deepEqual(nameVerdict(net, 'other.test'), { allowed: true });
  assert.deepEqual(nameVerdict(net, 'x.tracker.test'), { allowed: false, reason: 'denied' });
  assert.deepEqual(nameVerdict(DEFAULT_POLICY.egress, 'allowed.test'), { allowed: false, reason: 'mode-none' });
});

test('proxy URLs: http and socks5 with credentials; the password is redacted when shown', () => {
  assert.deepEqual(parseProxy('http://alice:p%40ss@203.0.113.20:3128'), { kind: 'http', host: '203.0.113.20', port: 3128, user: 'alice', pass: 'p@ss' });
  assert.deepEqual(parseProxy('socks5://proxy.test:1080'), { kind: 'socks5', host: 'proxy.test', port: 1080, user: null, pass: null });
  invalid(() => parseProxy('http://proxy.test'), 'egress.proxy');
  invalid(() => parseProxy('http://proxy.test:8080/path'), 'egress.proxy');
  const shown = redactPolicy(normalisePolicy({ egress: { mode: 'internet', proxy: 'http://alice:secret@203.0.113.20:3128' } }));
  assert.equal(shown.egress.proxy, 'http://alice:***@203.0.113.20:3128');
  assert.ok(!JSON.stringify(shown).includes('secret'));
});
