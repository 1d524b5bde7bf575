// One long-lived `nft -i` per namespace: a policy change or a DNS answer's addresses are one line (one atomic nft
// transaction: a line that fails changes nothing) on an open session, ~10 ms instead of the ~50-120 ms of starting
// `ip netns exec … nft -f` each time. After each line a sentinel command (`list counter … ack`) marks where its
// output ends; what nft wrote to stderr by then is the line's error. Restarted on its next use if it died.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { HangarError } from '../../errors.js';
import { nft, type NftApply } from './nft.js';
import { TABLE } from './plan.js';

const SENTINEL = `list counter inet ${TABLE} ack`;

/** Joins a multi-line script into one nft input line (one transaction). */
export function oneLine(script: string): string {
  return script.split('\n').map((l) => l.trim()).filter(Boolean).join(' ; ');
}

export class NftSession {
  private child: ChildProcessWithoutNullStreams | null = null;
  private out = '';
  private err = '';
  private queue: Promise<void> = Promise.resolve();
  private waiter: (() => void) | null = null;

  constructor(private readonly netns: string | undefined) {}

  private start(): ChildProcessWithoutNullStreams {
    const [cmd, args] = this.netns ? ['ip', ['netns', 'exec', this.netns, 'nft', '-i']] : ['nft', ['-i']];
    const c = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    c.stdout.setEncoding('utf8').on('data', (d: string) => { this.out += d; this.check(); });
    c.stderr.setEncoding('utf8').on('data', (d: string) => { this.err += d; });
    c.once('exit', () => { if (this.child === c) this.child = null; this.waiter?.(); });
    c.on('error', () => undefined);
    c.stdin.on('error', () => undefined);
    this.child = c;
    return c;
  }

  private check(): void {
    if (this.waiter && /counter ack \{[\s\S]*?\}\s*\}/.test(this.out)) this.waiter();
  }

  /** Applies one script (serialised with the session's other work). Throws NET_SETUP_FAILED with nft's message. */
  apply: NftApply = (script) => {
    const run = this.queue.then(() => this.applyNow(script));
    this.queue = run.catch(() => undefined);
    return run;
  };

  private async applyNow(script: string): Promise<void> {
    const line = oneLine(script);
    if (!line) return;
    // Until the table (and its ack counter) exists, the sentinel cannot work: the first script goes through nft -f.
    if (!line.includes(`add counter inet ${TABLE} ack`) && this.child === null) await nft(this.netns, `add table inet ${TABLE}\nadd counter inet ${TABLE} ack\n`);
    const c = this.child ?? this.start();
    this.out = '';
    this.err = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { this.waiter = null; c.kill('SIGKILL'); reject(new HangarError('NET_SETUP_FAILED', 'nft did not answer within 5 s', {})); }, 5000);
      this.waiter = () => {
        clearTimeout(timer);
        this.waiter = null;
        // stderr is written before the sentinel's output; give its pipe a moment to be read.
        setTimeout(resolve, 1);
      };
      c.stdin.write(`${line}\n${SENTINEL}\n`);
    });
    if (this.child !== c) throw new HangarError('NET_SETUP_FAILED', `nft exited: ${this.err.trim().slice(0, 500)}`, {});
    if (this.err.trim()) {
      const msg = this.err.trim().split('\n').filter((l) => l.startsWith('Error')).slice(0, 3).join(' | ') || this.err.trim().slice(0, 300);
      throw new HangarError('NET_SETUP_FAILED', `nft refused the change: ${msg}`, { stderr: this.err.slice(0, 4000) });
    }
  }

  close(): void {
    this.child?.stdin.end();
    this.child?.kill('SIGTERM');
    this.child = null;
  }
}
