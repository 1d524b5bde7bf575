// The CLI is a registry of commands; each area (kernel, image, vm, …) contributes its own in src/cli/<area>.ts.
// A command declares everything its help shows (usage, arguments, options with one line each, examples), so the
// help, the argument parser and the did-you-mean suggestions all read the same declaration.
import { HangarError } from '../errors.js';

export interface OptionDef {
  type: 'string' | 'boolean';
  /** One line for the help. */
  description: string;
  /** The value's placeholder in the help, e.g. 'N', 'ID' (string options). */
  arg?: string;
  /** The value must be an integer; the CLI checks the type, the controller the range. */
  int?: boolean;
  /** A one-letter spelling: '-o FILE' for --output, '-i' for --interactive. */
  short?: string;
  /** May be given several times; the values are collected in order (a string[]). */
  repeat?: boolean;
}

export type OptionSpec = Record<string, OptionDef>;

export interface CliIO {
  out: (s: string) => void;
  err: (s: string) => void;
  /** The environment the command reads (HANGAR_URL, HANGAR_TOKEN, …); process.env when absent. */
  env?: NodeJS.ProcessEnv;
  /** Ends a following command (events, console --follow) as Ctrl-C does. */
  signal?: AbortSignal;
  /** Byte streams for commands that pass bytes through (vm exec, shell, cp); absent: text through out/err. */
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
}

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

export interface ArgDef {
  name: string;
  description: string;
  /** Optional arguments come last. */
  optional?: boolean;
  /**
   * The last argument takes every word from here on, options included (`hangar vm exec ID ls -la`): the command's
   * own options come before it.
   */
  rest?: boolean;
}

export interface Command {
  /** e.g. ['kernel', 'lint'] */
  path: string[];
  summary: string;
  /** One usage line after the command path, e.g. 'PATH [--vmm firecracker|qemu-microvm] [--json]'. */
  usage: string;
  /** Positional arguments; more than these are refused. */
  args?: ArgDef[];
  options: OptionSpec;
  /** At least one complete command line, e.g. 'hangar vm ls --json'. */
  examples: string[];
  /** A paragraph the help prints after the summary. */
  details?: string;
  run: (args: ParsedArgs, io: CliIO) => Promise<number>;
}

/** The first positional argument, or INVALID_ARGUMENT (exit 2) naming what is missing. */
export function need(positionals: string[], what: string): string {
  const v = positionals[0];
  if (!v) throw new HangarError('INVALID_ARGUMENT', `missing ${what}`, { field: what });
  return v;
}

/** Prints a plain table: columns padded to the widest cell. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/** The common --json option. */
export const jsonOption = { json: { type: 'boolean', description: 'machine-readable output on stdout (errors too: {"error":{code,message,details}})' } } as const satisfies OptionSpec;

/** Quiet progress: --quiet, or HANGAR_QUIET=1 in the environment. */
export function quietFrom(values: ParsedArgs['values'], io: CliIO): boolean {
  return values.quiet === true || values.json === true || (io.env ?? process.env).HANGAR_QUIET === '1';
}

/** An abort signal for a following command: Ctrl-C (SIGINT) or the io's own signal ends it. */
export function interruptible(io: CliIO): { signal: AbortSignal; release: () => void } {
  const ctl = new AbortController();
  const onSigint = (): void => ctl.abort();
  process.once('SIGINT', onSigint);
  const onAbort = (): void => ctl.abort();
  io.signal?.addEventListener('abort', onAbort, { once: true });
  if (io.signal?.aborted) ctl.abort();
  return { signal: ctl.signal, release: () => { process.off('SIGINT', onSigint); io.signal?.removeEventListener('abort', onAbort); } };
}

/** A CLI-side count (a wait in seconds, lines): an integer of at least `min`. */
export function atLeast(value: string | boolean | string[] | boolean[] | undefined, flag: string, min: number, fallback: number): number {
  if (typeof value !== 'string') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new HangarError('INVALID_ARGUMENT', `${flag} must be an integer of at least ${min} (got ${JSON.stringify(value)})`, { field: flag, flag, reason: 'range', min });
  return n;
}
