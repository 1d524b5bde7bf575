// bench/net's statistics: the rotated order of the interleaved modes, the spread of samples and the paired cost
// (per-round ratios), which a slow phase of the machine shared by all modes of a round does not move.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pairedCost, roundOrder, spread, transferMbit } from '../../bench/net.js';

test('each round starts with the next mode: over n rounds every mode is first once', () => {
  const modes = ['a', 'b', 'c'];
  assert.deepEqual([0, 1, 2, 3].map((r) => roundOrder(modes, r)), [['a', 'b', 'c'], ['b', 'c', 'a'], ['c', 'a', 'b'], ['a', 'b', 'c']]);
});

test('spread: median and p25–p75', () => {
  assert.deepEqual(spread([5, 1, 4, 2, 3]), { median: 3, p25: 2, p75: 4, n: 5 });
});

test('paired cost: a round where the whole machine was slow does not make a policy look expensive', () => {
  // Round 2 ran at a third of the speed for both modes; unpaired medians would mix the phases.
  const rounds = [{ internet: [1000, 1000], allowlist: [980] }, { internet: [300], allowlist: [297, 297] }, { internet: [1000], allowlist: [990] }];
  const cost = pairedCost(rounds, 'allowlist', 'internet');
  assert.ok(Math.abs(cost - 0.01) < 1e-9, String(cost));
  assert.ok(Number.isNaN(pairedCost([{ internet: [1] }], 'allowlist', 'internet')), 'no pairs: no figure');
});

test('throughput is over the transfer only: the name lookup and handshake before it are not a cost per byte', () => {
  assert.equal(transferMbit(256 * 2 ** 20, 0.012, 0.512), (256 * 2 ** 20 * 8) / 0.5 / 1e6);
  assert.equal(transferMbit(0, 0, 1), null, 'nothing transferred');
  assert.equal(transferMbit(100, 0.5, 0.5), null, 'no transfer time');
  assert.equal(transferMbit(100, Number.NaN, 1), null, 'curl printed no timing');
});
