// Validation at the edge: names, paths, sizes, MACs and interface names are checked once, before any side effect,
// by these shared validators (the API schemas, the CLI and both VMM drivers' request builders use them). Every
// failure has the same shape as an API validation error: INVALID_ARGUMENT (UNKNOWN_FIELD for an unknown field)
// with details { field, in?, reason, expected?, min?, max?, allowed?, got? } and a message naming the field and
// the rule, e.g. `memMiB must be an integer from 128 to 16384 (got "abc")`.
import { isAbsolute, normalize } from 'node:path';
import { HangarError } from '../errors.js';

/** A resource name: lowercase letters, digits and '-', no leading '-'; at most NAME_MAX_LENGTH characters. */
export const NAME_PATTERN = '^[a-z0-9][a-z0-9-]*$';
export const NAME_MAX_LENGTH = 63;
/** An id, a name, an image id/prefix or a profile: what the API accepts to refer to something. */
export const REF_PATTERN = '^[a-z0-9][a-z0-9._-]*$';
export const REF_MAX_LENGTH = 128;
const NAME_RE = new RegExp(NAME_PATTERN);
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
/** A Linux interface name: at most 15 characters (IFNAMSIZ - 1), no '/', ':', ',' or spaces. */
const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const PATH_MAX = 4096;

export type InvalidReason = 'type' | 'range' | 'enum' | 'format' | 'required' | 'unknown';
export type RequestPart = 'body' | 'query' | 'params' | 'headers';

/** The details of every validation error (the CLI maps `field` to its flags and builds messages from the rest). */
export interface InvalidDetails {
  /** The property ('memMiB'; nested ones joined with '.'); '' for the whole body or query. */
  field: string;
  in?: RequestPart;
  reason: InvalidReason;
  expected?: string;
  min?: number;
  max?: number;
  allowed?: string[];
  pattern?: string;
  got?: unknown;
}

const GOT_MAX = 64;

/** The offending value as reported: strings cut to 64 characters, large arrays/objects as cut JSON text. */
export function gotValue(value: unknown): unknown {
  if (typeof value === 'string') return value.length > GOT_MAX ? value.slice(0, GOT_MAX) : value;
  if (value !== null && typeof value === 'object') {
    const json = JSON.stringify(value);
    return json.length > GOT_MAX ? json.slice(0, GOT_MAX) : value;
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return typeof value === 'bigint' || typeof value === 'function' || typeof value === 'symbol' ? String(value) : value;
}

/**
 * Builds the error: `${field} ${rule} (got X)`; UNKNOWN_FIELD for reason 'unknown', INVALID_ARGUMENT otherwise.
 * `got` is reported in the details when present, and quoted in the message unless `quoteGot` is false.
 */
export function invalidArgument(d: InvalidDetails, rule: string, { quoteGot = 'got' in d }: { quoteGot?: boolean } = {}): HangarError {
  const details: Record<string, unknown> = { ...d };
  if ('got' in d) details.got = gotValue(d.got);
  const label = d.field || (d.in === 'query' ? 'the query string' : d.in === 'params' ? 'the path' : 'the request body');
  const got = quoteGot ? ` (got ${JSON.stringify(details.got) ?? String(details.got)})` : '';
  return new HangarError(d.reason === 'unknown' ? 'UNKNOWN_FIELD' : 'INVALID_ARGUMENT', `${label} ${rule}${got}`, details);
}

/** "must be an integer from 1 to 8" / "of at least 1" / "of at most 8". */
export function numberRule(expected: string, min?: number, max?: number): string {
  const what = expected === 'integer' ? 'an integer' : 'a number';
  if (min !== undefined && max !== undefined) return `must be ${what} from ${min} to ${max}`;
  if (min !== undefined) return `must be ${what} of at least ${min}`;
  if (max !== undefined) return `must be ${what} of at most ${max}`;
  return `must be ${what}`;
}

/** "must be 1 to 63 characters long" and the like. */
export function lengthRule(min?: number, max?: number): string {
  if (min !== undefined && max !== undefined) return min === max ? `must be ${min} characters long` : `must be ${min} to ${max} characters long`;
  if (min !== undefined) return `must be at least ${min} character${min === 1 ? '' : 's'} long`;
  return `must be at most ${max ?? 0} characters long`;
}

/** A resource name: lowercase letters, digits and '-', 1–63 characters, no leading '-'. */
export function validName(value: unknown, field = 'name', maxLength = NAME_MAX_LENGTH): string {
  if (typeof value !== 'string') throw invalidArgument({ field, reason: 'type', expected: 'string', got: value }, 'must be a string');
  if (value.length < 1 || value.length > maxLength) {
    throw invalidArgument({ field, reason: 'range', expected: 'string', min: 1, max: maxLength, got: value }, lengthRule(1, maxLength));
  }
  if (!NAME_RE.test(value)) throw invalidArgument({ field, reason: 'format', pattern: NAME_PATTERN, got: value }, `must match ${NAME_PATTERN}`);
  return value;
}

/**
 * Names shaped like Hangar's ids (`vm-` or `snap-` and 8 hex digits). Lookups take an id or a name, so a VM named
 * like another VM's id (or a destroyed VM's) would answer for it: such names are refused at create.
 */
export const ID_SHAPED_PATTERN = '^(vm|snap)-[0-9a-f]{8}$';
const ID_SHAPED_RE = new RegExp(ID_SHAPED_PATTERN, 'i');

/** A name that is not shaped like an id; INVALID_ARGUMENT { field, reason: 'format' } otherwise. */
export function notIdShaped(value: string, field = 'name'): string {
  if (ID_SHAPED_RE.test(value)) {
    throw invalidArgument({ field, reason: 'format', pattern: ID_SHAPED_PATTERN, got: value }, 'must not look like an id (vm- or snap- followed by 8 hex digits)');
  }
  return value;
}

/** A path (relative ones are taken from the working directory) with no NUL or newline, normalised. */
export function validPath(value: unknown, field = 'path'): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > PATH_MAX || /[\0\n\r]/.test(value)) {
    throw invalidArgument({ field, reason: 'format', got: value }, 'must be a non-empty path without control characters');
  }
  return isAbsolute(value) ? normalize(value) : normalize(`${process.cwd()}/${value}`);
}

/** C0 controls and DEL: never valid in a path or a command line. */
export function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/**
 * An absolute path handed to another process (a VMM, maybe in a jail): absolute, at most 4096 characters, no
 * control characters (a newline would split it in logs; NUL cannot be passed at all). Returned as given, so it
 * matches what the process shows in /proc/PID/cmdline.
 */
export function cleanAbsPath(value: unknown, field: string): string {
  if (typeof value !== 'string' || !isAbsolute(value) || value.length > PATH_MAX || hasControl(value)) {
    throw invalidArgument({ field, reason: 'format', got: value }, 'must be an absolute path without control characters');
  }
  return value;
}

/** cleanAbsPath, normalised ('/a/../b' is '/b'). */
export function absPath(value: unknown, field: string): string {
  return normalize(cleanAbsPath(value, field));
}

/** A unicast MAC in aa:bb:cc:dd:ee:ff form, lower-cased (a multicast guest MAC gets no unicast traffic). */
export function validMac(value: unknown, field = 'net.mac'): string {
  if (typeof value !== 'string' || !MAC_RE.test(value)) {
    throw invalidArgument({ field, reason: 'format', got: value }, "must be six hex octets separated by ':' (like 02:00:00:00:00:01)");
  }
  if (parseInt(value.slice(0, 2), 16) & 1) throw invalidArgument({ field, reason: 'format', got: value }, 'is a multicast address; a NIC needs a unicast MAC (first octet even)');
  return value.toLowerCase();
}

/** A Linux interface name (a TAP): 1–15 characters [A-Za-z0-9_.-], not starting with '.', '-' or '_'. */
export function validInterfaceName(value: unknown, field = 'net.tap'): string {
  if (typeof value !== 'string' || !IFNAME_RE.test(value)) {
    throw invalidArgument({ field, reason: 'format', got: value }, 'must be an interface name of 1–15 characters [A-Za-z0-9_.-]');
  }
  return value;
}

/** An integer in [min, max]. A string of digits is accepted too (command-line flags and config values). */
export function validInt(value: unknown, field: string, min: number, max: number): number {
  const n = typeof value === 'string' && /^\d{1,15}$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw invalidArgument({ field, reason: 'type', expected: 'integer', min, max, got: value }, numberRule('integer', min, max));
  if (n < min || n > max) throw invalidArgument({ field, reason: 'range', expected: 'integer', min, max, got: value }, numberRule('integer', min, max));
  return n;
}

export function oneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw invalidArgument({ field, reason: 'enum', allowed: [...allowed], got: value }, `must be one of ${allowed.join(', ')}`);
  }
  return value as T;
}
