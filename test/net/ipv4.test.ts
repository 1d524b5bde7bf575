import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cidrContains, cidrsOverlap, formatIpv4, maskOf, parseCidr, parseIpv4, type Ipv4Cidr } from '../../src/net/ipv4.js';

test('parseIpv4 and formatIpv4 round-trip; malformed addresses are null', () => {
  for (const s of ['0.0.0.0', '10.0.0.1', '192.168.255.254', '255.255.255.255']) assert.equal(formatIpv4(parseIpv4(s)!), s);
  for (const s of ['10.0.0', '10.0.0.256', '10.0.0.01', ' 10.0.0.1', '10.0.0.1.2', 'a.b.c.d', '']) assert.equal(parseIpv4(s), null, s);
});

test('parseCidr canonicalises and refuses host bits', () => {
  const c = parseCidr('10.77.0.0/24') as Ipv4Cidr;
  assert.equal(c.cidr, '10.77.0.0/24');
  assert.equal(formatIpv4(c.broadcast), '10.77.0.255');
  assert.equal(formatIpv4(c.mask), '255.255.255.0');
  assert.match(parseCidr('10.77.0.1/24') as string, /host bits .*did you mean 10\.77\.0\.0\/24/);
  assert.match(parseCidr('10.77.0.0/33') as string, /prefix/);
  assert.match(parseCidr('10.77.0.0') as string, /CIDR/);
  assert.equal(maskOf(0), 0);
  assert.equal(formatIpv4(maskOf(30)), '255.255.255.252');
});

test('containment and overlap', () => {
  const a = parseCidr('10.0.0.0/16') as Ipv4Cidr;
  const b = parseCidr('10.0.5.0/24') as Ipv4Cidr;
  const c = parseCidr('10.1.0.0/24') as Ipv4Cidr;
  assert.ok(cidrContains(a, parseIpv4('10.0.200.1')!));
  assert.ok(!cidrContains(b, parseIpv4('10.0.6.1')!));
  assert.ok(cidrsOverlap(a, b) && cidrsOverlap(b, a));
  assert.ok(!cidrsOverlap(a, c));
});
