// The host→guest resume line: its format, that the guest script accepts exactly it, and the host side's
// behaviour with an agent that answers and with one that does not (a Unix socket standing in for QEMU's).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../../src/errors.js';
import { AGENT_PORT_NAME, formatHostLine, formatSyncLine, HOSTNAME_RE, RESUMED_MARKER, SEED_BYTES, sendResumeSync, SYNC_LINE_RE } from '../../../src/vmm/qemu/agent.js';
import { ROOT } from '../../support/env.js';

const script = readFileSync(join(ROOT, 'src/image/guest/resume-agent.sh'), 'utf8');

test('the sync line: time with milliseconds and 64 bytes of seed, refused otherwise', () => {
  const line = formatSyncLine(1795762782988, Buffer.alloc(SEED_BYTES, 0xab));
  assert.equal(line, `sync 1795762782.988 ${'ab'.repeat(64)}\n`);
  assert.match(line.trimEnd(), SYNC_LINE_RE);
  assert.throws(() => formatSyncLine(Date.now(), Buffer.alloc(8)), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => formatSyncLine(Number.NaN, Buffer.alloc(SEED_BYTES)), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
});

test('the host line carries a VM-name-shaped hostname and nothing else', () => {
  assert.equal(formatHostLine('alice-2'), 'host alice-2\n');
  for (const bad of ['', 'UPPER', 'a b', 'a\nsync 1 2', '-lead', 'x'.repeat(64), 'a;reboot']) {
    assert.throws(() => formatHostLine(bad), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'), JSON.stringify(bad));
  }
});

test('the guest agent script agrees with the host: port name, line pattern, marker, and the ioctls it uses', () => {
  assert.ok(script.includes(`"$n" = ${AGENT_PORT_NAME} ]`), 'looks for the port QEMU names');
  assert.ok(script.includes('^sync\\ ([0-9]{9,11}\\.[0-9]{3})\\ ([0-9a-f]{128})$'), 'the same pattern as SYNC_LINE_RE');
  assert.ok(script.includes(`echo "${RESUMED_MARKER} $now $host"`), 'the marker names the hostname the guest now has');
  assert.ok(script.includes(`^host\\ (${HOSTNAME_RE.source.slice(1, -1)})$`), 'the same hostname pattern as HOSTNAME_RE');
  assert.ok(script.includes('0x40085203') && script.includes('0x5207'), 'RNDADDENTROPY and RNDRESEEDCRNG');
  assert.ok(!/@[A-Z_]+@/.test(script), 'no template placeholders the image build would refuse');
});

test('sendResumeSync: waits for the agent\'s answer; no agent is not an error; no socket is', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-agent-'));
  try {
    const path = join(dir, 'agent.sock');
    let got = '';
    const srv = createServer((s) => {
      s.on('data', (d: Buffer) => {
        got += d.toString();
        if (got.endsWith('\n')) setTimeout(() => s.write('hangar-agent noise\nok 1795762783.25\n'), 50);
      });
    });
    await new Promise<void>((r) => srv.listen(path, r));
    const r = await sendResumeSync(path, { now: () => 1795762782988 });
    assert.equal(r.sentAt, 1795762782988);
    assert.equal(r.guestTime, 1795762783.25);
    assert.match(got.trimEnd(), SYNC_LINE_RE);
    await new Promise<void>((r2) => srv.close(() => r2()));

    const mute = createServer((s) => s.resume()); // reads and ignores
    await new Promise<void>((r2) => mute.listen(path, r2));
    const t0 = Date.now();
    const silent = await sendResumeSync(path, { timeoutMs: 300 });
    assert.equal(silent.guestTime, null);
    assert.ok(Date.now() - t0 < 2000);
    await new Promise<void>((r2) => mute.close(() => r2()));

    await assert.rejects(sendResumeSync(join(dir, 'none.sock')), (e: unknown) => isHangarError(e, 'SNAPSHOT_FAILED'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
