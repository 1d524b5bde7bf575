// The command line parser, pure: options as a command declares them, `--flag value` and `--flag=value` alike
// (negative numbers are values, so `--ttl -1` and `--ttl=-1` mean the same), integers checked here, unknown
// options and extra arguments refused with a did-you-mean. Every mistake is INVALID_ARGUMENT (exit 2).
import { HangarError } from '../errors.js';
import type { ArgDef, OptionSpec, ParsedArgs } from './command.js';

const NEGATIVE_NUMBER = /^-\d+(\.\d+)?$/;

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent transpositions. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidates closest to a mistyped word (a typo or two, or a prefix of it), best first. */
export function suggest(word: string, candidates: readonly string[]): string[] {
  const limit = Math.max(1, Math.floor(word.length / 3));
  const scored = candidates
    .map((c) => ({ c, d: word.length >= 2 && c.startsWith(word) ? 0.5 : editDistance(word, c) }))
    .filter((s) => s.d <= limit);
  const best = Math.min(...scored.map((s) => s.d));
  return scored.filter((s) => s.d === best).map((s) => s.c).slice(0, 3);
}

/** ' (did you mean …?)' or ''. */
export function didYouMean(word: string, candidates: readonly string[], quote: (s: string) => string = (s) => `'${s}'`): string {
  const s = suggest(word, candidates);
  return s.length ? `; did you mean ${s.map(quote).join(' or ')}?` : '';
}

function bad(message: string, details: Record<string, unknown>, hint: string): HangarError {
  return new HangarError('INVALID_ARGUMENT', message, { ...details, hint });
}

/**
 * The words of `argv` that are the command's own options (not after `--`, nor from a rest argument on), so that
 * `hangar vm exec ID ls --help` runs `ls --help` instead of printing hangar's help. Pure.
 */
export function ownWords(argv: readonly string[], options: OptionSpec, args: readonly ArgDef[]): string[] {
  const restAt = args.findIndex((a) => a.rest);
  let n = 0;
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === '--') return argv.slice(0, i);
    if (!tok.startsWith('-') || tok === '-' || NEGATIVE_NUMBER.test(tok)) {
      if (restAt >= 0 && n === restAt) return argv.slice(0, i);
      n++;
      continue;
    }
    const o = tok.startsWith('--') ? options[tok.slice(2)] : undefined;
    if (o && o.type === 'string' && Object.hasOwn(options, tok.slice(2))) i++;
  }
  return [...argv];
}

/**
 * Parses a command's arguments. `where` names the command for the hints ('hangar vm create'). Option values stay
 * strings (integers are checked to be integers); booleans are true when given.
 */
export function parseArgv(argv: readonly string[], options: OptionSpec, args: readonly ArgDef[], where: string): ParsedArgs {
  const hint = `see '${where} --help'`;
  const values: ParsedArgs['values'] = {};
  const positionals: string[] = [];
  const restAt = args.findIndex((a) => a.rest);
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!tok.startsWith('-') || tok === '-' || NEGATIVE_NUMBER.test(tok)) {
      // The first word of a rest argument: it and everything after it are the argument's.
      if (restAt >= 0 && positionals.length === restAt) { positionals.push(...argv.slice(i)); break; }
      positionals.push(tok);
      continue;
    }
    const body = tok.startsWith('--') ? tok.slice(2) : tok.slice(1);
    const eq = body.indexOf('=');
    const short = tok.startsWith('--') ? undefined : Object.keys(options).find((o) => options[o]!.short !== undefined && options[o]!.short === (eq < 0 ? body : body.slice(0, eq)));
    const name = short ?? (eq < 0 ? body : body.slice(0, eq));
    const opt = (tok.startsWith('--') || short !== undefined) && Object.hasOwn(options, name) ? options[name] : undefined;
    if (!opt) {
      const written = tok.slice(0, tok.length - body.length) + name;
      const known = [...Object.keys(options).map((o) => `--${o}`), '--help'];
      throw bad(`unknown option '${written}' for '${where}'${didYouMean(`--${name}`, known)}`, { option: written }, hint);
    }
    const flag = `--${name}`;
    if (opt.type === 'boolean') {
      if (eq >= 0) throw bad(`${flag} takes no value (got ${JSON.stringify(body.slice(eq + 1))})`, { field: flag, flag }, hint);
      values[name] = true;
      continue;
    }
    let value: string;
    if (eq >= 0) value = body.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('-') && next !== '-' && !NEGATIVE_NUMBER.test(next))) {
        throw bad(`${flag} needs a value${opt.arg ? ` (${opt.arg})` : ''}${next === undefined ? '' : `; to give one that starts with '-', write ${flag}=VALUE`}`, { field: flag, flag, reason: 'required' }, hint);
      }
      value = next;
      i++;
    }
    if (opt.int && !/^-?\d+$/.test(value)) {
      throw bad(`${flag} must be an integer (got ${JSON.stringify(value)})`, { field: flag, flag, reason: 'type', expected: 'integer' }, hint);
    }
    if (opt.repeat) values[name] = [...((values[name] as string[] | undefined) ?? []), value];
    else values[name] = value;
  }
  const required = args.filter((a) => !a.optional);
  if (positionals.length < required.length) {
    const missing = required[positionals.length]!;
    throw bad(`missing ${missing.name}: ${missing.description}`, { field: missing.name, reason: 'required' }, hint);
  }
  if (restAt < 0 && positionals.length > args.length) {
    const extra = positionals[args.length]!;
    const takes = args.length === 0 ? 'takes no arguments' : `takes ${args.map((a) => (a.optional ? `[${a.name}]` : a.name)).join(' ')}`;
    throw bad(`unexpected argument ${JSON.stringify(extra)}: '${where}' ${takes}`, { argument: extra, position: args.length + 1 }, hint);
  }
  return { values, positionals };
}
