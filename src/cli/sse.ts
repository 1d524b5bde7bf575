// Server-Sent Events, parsed as the specification says: fields per line (CR, LF or CRLF), a blank line ends an
// event, several `data:` lines join with '\n', lines starting with ':' are comments (the controller's pings). Pure.

export interface SseEvent {
  /** The `id:` field (the controller sends the event's seq). */
  id: string | null;
  /** The `event:` field; 'message' when absent. */
  event: string;
  data: string;
}

export class SseParser {
  private buf = '';
  private id: string | null = null;
  private event = '';
  private data: string[] = [];

  /** Feeds text; returns the events it completed. */
  push(text: string): SseEvent[] {
    this.buf += text;
    const out: SseEvent[] = [];
    for (;;) {
      const m = /\r\n|\n|\r/.exec(this.buf);
      // A lone CR at the end may be the first half of a CRLF: wait for more.
      if (!m || (m[0] === '\r' && m.index === this.buf.length - 1)) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      if (line === '') {
        if (this.data.length) out.push({ id: this.id, event: this.event || 'message', data: this.data.join('\n') });
        this.event = '';
        this.data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') this.data.push(value);
      else if (field === 'event') this.event = value;
      else if (field === 'id' && !value.includes('\0')) this.id = value;
    }
    return out;
  }
}
