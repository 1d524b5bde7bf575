// Validation at the edge: names, paths and sizes are checked once, before any side effect.
import { isAbsolute, normalize } from 'node:path';
import { HangarError } from '../errors.js';

const NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** A resource name: lowercase letters, digits and '-', 1–63 characters, no leading '-'. */
export function validName(value: unknown, field = 'name'): string {
  if (typeof value !== 'string' || !NAME_RE.test(value)) {
    throw new HangarError('INVALID_ARGUMENT', `${field} must match ${NAME_RE} (got ${JSON.stringify(value)})`, { field });
  }
  return value;
}

/** An absolute path with no NUL, newline or '..' segment after normalisation. */
export function validPath(value: unknown, field = 'path'): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 4096 || /[\0\n\r]/.test(value)) {
    throw new HangarError('INVALID_ARGUMENT', `${field} must be a non-empty path without control characters`, { field });
  }
  const abs = isAbsolute(value) ? normalize(value) : normalize(`${process.cwd()}/${value}`);
  return abs;
}

export function validInt(value: unknown, field: string, min: number, max: number): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new HangarError('INVALID_ARGUMENT', `${field} must be an integer from ${min} to ${max} (got ${JSON.stringify(value)})`, { field, min, max });
  }
  return n;
}

export function oneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new HangarError('INVALID_ARGUMENT', `${field} must be one of ${allowed.join(', ')} (got ${JSON.stringify(value)})`, { field, allowed });
  }
  return value as T;
}
