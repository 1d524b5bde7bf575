// After a restore the guest wakes with the clock and the random state of the instant it was saved, identical in
// every clone of one snapshot. QEMU cannot set a guest's clock, the kernel has no RTC driver to read (and no
// ACPI, so no VM generation ID), and the serial console is not a command channel. So Hangar gives every QEMU guest
// a virtio-serial port (AGENT_PORT_NAME) and, right after `cont`, writes one line into it:
//
//     sync <unix seconds with milliseconds> <64 hex bytes of fresh host randomness>
//
// The guest side is src/image/guest/resume-agent.sh (run from /etc/hangar/init.d/): it sets the clock, adds the
// seed to the kernel's pool with credit and forces a CRNG reseed (RNDADDENTROPY + RNDRESEEDCRNG, the sequence
// Firecracker's random-for-clones note recommends), forgets neighbour entries that may point at a gateway MAC of
// another namespace, and prints RESUMED_MARKER on the console. The virtio-rng device (argv.ts) keeps feeding each
// clone its own host entropy after that. Firecracker guests get their clock from snapshot-load clock_realtime.
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { HangarError } from '../../errors.js';
import { RESUMED_MARKER } from '../../guest-protocol.js';

export { AGENT_PORT_NAME } from './argv.js';
export { RESUMED_MARKER };
export const SEED_BYTES = 64;

/** The one line the host sends. Pure. */
export function formatSyncLine(nowMs: number, seed: Buffer): string {
  if (!Number.isFinite(nowMs) || nowMs <= 0) throw new HangarError('INVALID_ARGUMENT', 'nowMs must be a positive time', { field: 'nowMs' });
  if (seed.length !== SEED_BYTES) throw new HangarError('INVALID_ARGUMENT', `the seed must be ${SEED_BYTES} bytes`, { field: 'seed' });
  return `sync ${(nowMs / 1000).toFixed(3)} ${seed.toString('hex')}\n`;
}

/** A guest hostname, the shape of a VM name: what `host NAME` may carry (mirrors resume-agent.sh). */
export const HOSTNAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * The line that gives a restored guest its own hostname (a clone keeps its snapshot's otherwise), sent before the
 * sync line; agents that predate it skip it. Pure.
 */
export function formatHostLine(hostname: string): string {
  if (!HOSTNAME_RE.test(hostname)) throw new HangarError('INVALID_ARGUMENT', `not a hostname: ${JSON.stringify(hostname)}`, { field: 'hostname' });
  return `host ${hostname}\n`;
}

/** What the guest agent accepts (mirrors the regular expression in resume-agent.sh). Pure. */
export const SYNC_LINE_RE = /^sync [0-9]{9,11}\.[0-9]{3} [0-9a-f]{128}$/;

/** The guest's answer: `ok <its clock after the sync, unix seconds>`. */
const ACK_RE = /^ok ([0-9]+(?:\.[0-9]+)?)$/m;

export interface SyncResult {
  sentAt: number;
  /** The guest's clock after it set it (null: no agent answered in time, e.g. an image without the agent). */
  guestTime: number | null;
}

/**
 * Connects to the VM's agent socket (QEMU listens on it), sends the sync line and waits for the agent's answer
 * (the connection stays open until then: QEMU drops unread bytes when the peer hangs up). No answer within
 * timeoutMs is not an error: the image may predate the agent.
 */
export async function sendResumeSync(socketPath: string, opts: { timeoutMs?: number; now?: () => number; hostname?: string } = {}): Promise<SyncResult> {
  const hostLine = opts.hostname === undefined ? '' : formatHostLine(opts.hostname);
  const now = opts.now ?? Date.now;
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const s = connect({ path: socketPath });
    let sentAt = 0;
    let buf = '';
    const done = (guestTime: number | null): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ sentAt, guestTime });
    };
    const timer = setTimeout(() => {
      if (sentAt) done(null);
      else { s.destroy(); reject(new HangarError('SNAPSHOT_FAILED', `the agent socket ${socketPath} did not answer within ${timeoutMs} ms`, { socketPath })); }
    }, timeoutMs);
    // `on`, not `once`: a second error (EPIPE then ECONNRESET) must not be an uncaught 'error' event.
    s.on('error', (e) => {
      clearTimeout(timer);
      if (sentAt) done(null);
      else reject(new HangarError('SNAPSHOT_FAILED', `agent socket ${socketPath}: ${e.message}`, { socketPath }, { cause: e }));
    });
    s.on('data', (d: Buffer) => {
      buf = (buf + d.toString('latin1')).slice(-4096);
      const m = ACK_RE.exec(buf);
      if (m) done(Number(m[1]));
    });
    s.once('connect', () => {
      // Time is taken at the last moment: the line is in the guest's queue microseconds later.
      sentAt = now();
      s.write(hostLine + formatSyncLine(sentAt, randomBytes(SEED_BYTES)));
    });
  });
}
