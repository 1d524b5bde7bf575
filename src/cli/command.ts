// The CLI is a registry of commands; each area (kernel, image, vm, …) contributes its own in src/cli/<area>.ts.
import type { ParseArgsConfig } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface CliIO {
  out: (s: string) => void;
  err: (s: string) => void;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

export interface Command {
  /** e.g. ['kernel', 'lint'] */
  path: string[];
  summary: string;
  /** One usage line after the command path, e.g. 'PATH [--vmm firecracker|qemu-microvm] [--json]'. */
  usage: string;
  options: OptionSpec;
  run: (args: ParsedArgs, io: CliIO) => Promise<number>;
}

/** The first positional argument, or the parse error the CLI reports as bad input (exit 2). */
export function need(positionals: string[], what: string): string {
  const v = positionals[0];
  if (!v) throw Object.assign(new TypeError(`missing ${what}`), { code: 'ERR_PARSE_ARGS_MISSING' });
  return v;
}

/** Prints a plain table: columns padded to the widest cell. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}
