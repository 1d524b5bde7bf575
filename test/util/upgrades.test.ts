// Several WebSocket endpoints on one server: exactly one refuses a path none of them claims, none refuses another's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { claimUpgrades } from '../../src/util/upgrades.js';

test("a path nobody claims is refused once (by the first attached); another endpoint's path by none", () => {
  const server = createServer();
  const vnc = claimUpgrades(server, (u) => u === '/vnc');
  const cdp = claimUpgrades(server, (u) => u === '/cdp');
  const exec = claimUpgrades(server, (u) => u === '/exec');
  const refusers = (u: string): number => [vnc, cdp, exec].filter((c) => c.refusesUnclaimed(u)).length;
  assert.equal(refusers('/nope'), 1);
  for (const u of ['/vnc', '/cdp', '/exec']) assert.equal(refusers(u), 0, `${u} is someone's`);
  vnc.release();
  assert.equal(refusers('/nope'), 1, 'the next one takes over when the first leaves');
  assert.equal(refusers('/vnc'), 1, 'a released path is nobody\'s');
});
