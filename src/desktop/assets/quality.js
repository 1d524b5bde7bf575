// Adaptive JPEG quality for the viewer page (browser ES module, no DOM: unit-tested under Node). It estimates the
// viewer's throughput from the RFB stream itself, the way TigerVNC's viewer does: noVNC asks for the next
// framebuffer update as soon as it has drawn one, so the bytes that arrive between two FramebufferUpdateRequests
// are one update, and the time from its first byte to the next request is how long it took to come in. Updates
// too small to time (a keystroke's echo) are not samples. A smoothed estimate below lowKbps lowers noVNC's
// qualityLevel one step (at most every cooldownMs; tight then sends coarser JPEG for picture-like areas, text is
// palette-coded anyway), and one above highKbps raises it again, never above the page's own setting.
// The page feeds it: request(t) for each FramebufferUpdateRequest sent, data(bytes, t) for each message received.
/* global performance */

/** RFB client message type of FramebufferUpdateRequest. */
export const FB_UPDATE_REQUEST = 3;

export const QUALITY_DEFAULTS = Object.freeze({
  /** The page's quality (noVNC qualityLevel, 0-9): the ceiling. */
  max: 6,
  /** The floor when bandwidth is low. */
  min: 1,
  /** Below this smoothed throughput (kbit/s) quality goes down a step. */
  lowKbps: 6_000,
  /** Above it, up a step. */
  highKbps: 24_000,
  /** Updates smaller than this are not timed. */
  minSampleBytes: 32 * 1024,
  /** At most one change per this many ms. */
  cooldownMs: 2_000,
  /** Weight of a new sample in the smoothed estimate. */
  alpha: 0.3,
});

export class AdaptiveQuality {
  constructor(opts = {}) {
    this.o = { ...QUALITY_DEFAULTS, ...opts };
    this.quality = this.o.max;
    this.kbps = null;
    this.samples = 0;
    this.firstAt = null;
    this.bytes = 0;
    this.changedAt = -Infinity;
  }

  /** A message of `bytes` arrived at t (ms). */
  data(bytes, t) {
    if (this.firstAt === null) this.firstAt = t;
    this.bytes += bytes;
  }

  /**
   * A FramebufferUpdateRequest was sent at t: the update before it is complete. Returns the new quality level when
   * it changes, else null.
   */
  request(t) {
    const { bytes, firstAt } = this;
    this.bytes = 0;
    this.firstAt = null;
    if (firstAt === null || bytes < this.o.minSampleBytes) return null;
    const ms = Math.max(1, t - firstAt);
    const kbps = (bytes * 8) / ms;
    this.kbps = this.kbps === null ? kbps : this.o.alpha * kbps + (1 - this.o.alpha) * this.kbps;
    this.samples++;
    return this.decide(t);
  }

  decide(t) {
    if (this.kbps === null || t - this.changedAt < this.o.cooldownMs) return null;
    let q = this.quality;
    if (this.kbps < this.o.lowKbps && q > this.o.min) q--;
    else if (this.kbps > this.o.highKbps && q < this.o.max) q++;
    if (q === this.quality) return null;
    this.quality = q;
    this.changedAt = t;
    return q;
  }
}

/** The RFB client message type of an outgoing WebSocket message (its first byte), or -1. */
export function messageType(data) {
  const u8 = data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
  return u8 && u8.length > 0 ? u8[0] : -1;
}

/**
 * Wires an AdaptiveQuality to a WebSocket (before noVNC gets it) and calls onChange(quality) when the level
 * should change. Returns the policy (the page exposes it for tests and the bench).
 */
export function adaptQuality(ws, onChange, opts = {}) {
  const policy = new AdaptiveQuality(opts);
  const now = () => performance.now();
  ws.addEventListener('message', (e) => {
    const d = e.data;
    policy.data(typeof d === 'string' ? d.length : (d.byteLength ?? d.size ?? 0), now());
  });
  const send = ws.send.bind(ws);
  ws.send = (data) => {
    if (messageType(data) === FB_UPDATE_REQUEST) {
      const q = policy.request(now());
      if (q !== null) onChange(q);
    }
    send(data);
  };
  return policy;
}
