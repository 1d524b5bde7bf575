// Guest text made safe for the operator's terminal. The serial console is written by the guest (its desktop user
// can write to ttyS0), so `hangar vm console` must not pass on what a terminal would act on: CSI sequences (cursor,
// colours, reports), OSC (window title, OSC 52 clipboard writes, hyperlinks), DCS/SOS/PM/APC strings, other escape
// sequences, and every other C0/C1 control except newline and tab. A pure state machine over chunks: a sequence
// split across chunks is still recognised and removed.

type State = 'text' | 'esc' | 'escInter' | 'csi' | 'str' | 'strEsc';

/** A string sequence (OSC, DCS…) longer than this is given up: what follows is shown (as sanitised text). */
const MAX_STRING = 8192;

export class TerminalSanitizer {
  private state: State = 'text';
  private strLen = 0;

  /** The safe part of `chunk`; state carries over to the next chunk. */
  push(chunk: string): string {
    let out = '';
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      switch (this.state) {
        case 'text':
          if (c === 0x0a || c === 0x09 || (c >= 0x20 && c < 0x7f) || c >= 0xa0) out += chunk[i];
          else if (c === 0x1b) this.state = 'esc';
          else if (c === 0x9b) this.state = 'csi';
          else if (c === 0x9d || c === 0x90 || c === 0x98 || c === 0x9e || c === 0x9f) this.enterString();
          // any other C0, DEL or C1 control: dropped
          break;
        case 'esc':
          if (c === 0x5b) this.state = 'csi'; // ESC [
          else if (c === 0x5d || c === 0x50 || c === 0x58 || c === 0x5e || c === 0x5f) this.enterString(); // ] P X ^ _
          else if (c >= 0x20 && c <= 0x2f) this.state = 'escInter';
          else if (c === 0x1b) this.state = 'esc';
          else this.state = 'text'; // a final byte (or anything else) ends it
          break;
        case 'escInter':
          if (c >= 0x30 && c <= 0x7e) this.state = 'text';
          else if (c === 0x1b) this.state = 'esc';
          else if (!(c >= 0x20 && c <= 0x2f)) this.state = 'text';
          break;
        case 'csi':
          if (c >= 0x40 && c <= 0x7e) this.state = 'text'; // the final byte
          else if (c === 0x1b) this.state = 'esc';
          else if (c === 0x18 || c === 0x1a) this.state = 'text'; // CAN, SUB cancel
          else if (c >= 0x80) this.state = 'text';
          break;
        case 'str':
          if (c === 0x07 || c === 0x9c || c === 0x18 || c === 0x1a) this.state = 'text'; // BEL, ST, CAN, SUB
          else if (c === 0x1b) this.state = 'strEsc';
          else if (++this.strLen > MAX_STRING) this.state = 'text';
          break;
        case 'strEsc':
          // ESC \ is ST; any other ESC ends the string and starts a sequence of its own.
          this.state = 'esc';
          if (c === 0x5c) this.state = 'text';
          else i--;
          break;
      }
    }
    return out;
  }

  private enterString(): void {
    this.state = 'str';
    this.strLen = 0;
  }
}

/** `text` without control sequences (one whole piece of text). */
export function sanitizeTerminal(text: string): string {
  return new TerminalSanitizer().push(text);
}
