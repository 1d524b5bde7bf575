// The controller validates requests and says which body property is wrong (details.field, and reason, min, max,
// allowed, expected); a user typed a flag. This is the one table from API fields to CLI flags, and the one place
// a server's 400 is re-worded in the user's terms: `--mem must be an integer from 128 to 16384 (got "99")`.
// The ranges are the server's: the CLI never hard-codes them. Pure.
import { HangarError, isHangarError } from '../errors.js';

/** API field (request body or query property) → the flag that sets it. */
export const FIELD_FLAGS: Readonly<Record<string, string>> = {
  image: '--image',
  profile: '--profile',
  vcpus: '--vcpus',
  memMiB: '--mem',
  name: '--name',
  ttlSeconds: '--ttl',
  vmm: '--vmm',
  fromSnapshot: '--from-snapshot',
  pool: '--pool',
  volumes: '--volume',
  idleTimeoutS: '--idle',
  idleAction: '--idle-action',
  vm: '--vm',
  lines: '--lines',
  since: '--since',
  timeoutMs: '--timeout',
};

interface ServerDetails {
  field?: unknown;
  reason?: unknown;
  min?: unknown;
  max?: unknown;
  allowed?: unknown;
  expected?: unknown;
  validation?: unknown;
}

/** The API field an error is about: details.field, else the validator's instance path, else the message's. */
export function fieldOf(e: HangarError): string | null {
  const d = e.details as ServerDetails;
  if (typeof d.field === 'string' && d.field) return d.field.replace(/^\/|^(body|querystring)[./]/, '');
  const v = Array.isArray(d.validation) ? (d.validation[0] as { path?: unknown; instancePath?: unknown } | undefined) : undefined;
  const path = v && (typeof v.path === 'string' ? v.path : typeof v.instancePath === 'string' ? v.instancePath : '');
  if (path) return path.replace(/^\//, '').split('/')[0] ?? null;
  return /^(?:body|querystring)[/.](\w+)/.exec(e.message)?.[1] ?? null;
}

const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The message for one wrong flag, from the server's structured details (or its message, re-addressed). */
export function flagMessage(e: HangarError, field: string, flag: string, given: string | undefined): string {
  const d = e.details as ServerDetails;
  const got = given === undefined ? '' : ` (got ${JSON.stringify(given)})`;
  const keyword = Array.isArray(d.validation) ? (d.validation[0] as { keyword?: unknown } | undefined)?.keyword : undefined;
  const reason = typeof d.reason === 'string' ? d.reason
    : e.code === 'UNKNOWN_FIELD' ? 'unknown'
      : Array.isArray(d.allowed) ? 'enum'
        : num(d.min) || num(d.max) ? 'range'
          : keyword === 'required' ? 'required' : null;
  const expected = typeof d.expected === 'string' ? (d.expected === 'integer' ? 'an integer' : d.expected) : 'an integer';
  if (reason === 'unknown') return `${flag} is not supported by this controller (it does not know '${field}')`;
  if (reason === 'required') return `${flag} is required`;
  if (reason === 'enum' && Array.isArray(d.allowed) && d.allowed.length) return `${flag} must be one of: ${d.allowed.map(String).join(', ')}${got}`;
  if ((reason === 'range' || reason === 'type') && num(d.min) && num(d.max)) return `${flag} must be ${expected} from ${d.min} to ${d.max}${got}`;
  if ((reason === 'range' || reason === 'type') && num(d.min)) return `${flag} must be ${expected} of at least ${d.min}${got}`;
  if ((reason === 'range' || reason === 'type') && num(d.max)) return `${flag} must be ${expected} of at most ${d.max}${got}`;
  if (reason === 'type') return `${flag} must be ${expected}${got}`;
  // No structured details: the server's own words, addressed to the flag instead of the field.
  const rest = e.message.replace(new RegExp(`^(?:(?:body|querystring)[/.])?${field}\\b:?\\s*`), '');
  const addressed = rest !== e.message ? `${flag} ${rest}` : `${flag}: ${e.message}`;
  return /\(got .*\)$/.test(addressed) ? addressed : addressed + got;
}

/**
 * Re-words a server validation error (INVALID_ARGUMENT, UNKNOWN_FIELD) about a field the user set with a flag;
 * `given` maps flags to what the user typed. Anything else is returned as it is.
 */
export function inFlagTerms(e: unknown, given: Readonly<Record<string, string | undefined>>): unknown {
  if (!isHangarError(e) || (e.code !== 'INVALID_ARGUMENT' && e.code !== 'UNKNOWN_FIELD')) return e;
  const field = fieldOf(e);
  const flag = field ? FIELD_FLAGS[field] : undefined;
  if (!field || !flag) return e;
  return new HangarError(e.code, flagMessage(e, field, flag, given[flag]), { ...e.details, field, flag }, { cause: e });
}

/** Runs a request whose fields come from flags; its validation errors are re-worded for those flags. */
export async function withFlags<T>(given: Readonly<Record<string, string | undefined>>, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw inFlagTerms(e, given);
  }
}
