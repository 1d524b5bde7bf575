// One registry of error codes. Every failure Hangar reports carries one of these codes; the HTTP status and the
// CLI exit code are derived here and nowhere else. Codes are stable: add new ones, never rename.

export interface ErrorSpec {
  /** HTTP status the API answers with. */
  readonly http: number;
  /** One line that explains the code to a human. */
  readonly summary: string;
}

export const ERRORS = {
  // ---- generic / input
  INVALID_ARGUMENT: { http: 400, summary: 'A value failed validation' },
  UNKNOWN_FIELD: { http: 400, summary: 'The request has a field that is not part of the schema' },
  PAYLOAD_TOO_LARGE: { http: 413, summary: 'The request body is larger than allowed' },
  NOT_FOUND: { http: 404, summary: 'No such resource' },
  CONFLICT: { http: 409, summary: 'The resource is in a state that does not allow this' },
  INTERNAL: { http: 500, summary: 'An unexpected internal error' },
  CANCELLED: { http: 499, summary: 'The operation was interrupted' },
  BAD_URL: { http: 400, summary: 'The request path is not valid URL encoding' },
  PARAM_TOO_LONG: { http: 414, summary: 'A path parameter is longer than any id or name the API accepts' },

  // ---- host
  NOT_ROOT: { http: 500, summary: 'This operation needs root privileges' },
  MISSING_HOST_TOOLS: { http: 500, summary: 'Host tools are missing' },
  NO_DISK_SPACE: { http: 507, summary: 'Not enough free disk space' },
  COMMAND_FAILED: { http: 500, summary: 'A host command failed' },
  COMMAND_TIMEOUT: { http: 504, summary: 'A host command did not finish in time' },
  NO_APT_MIRROR: { http: 500, summary: 'No Debian mirror found in the apt sources' },

  // ---- kernel
  KERNEL_UNREADABLE: { http: 422, summary: 'The kernel or config cannot be read' },
  KERNEL_LINT_FAILED: { http: 422, summary: 'The kernel failed the lint for its target VMM' },
  KERNEL_BUILD_FAILED: { http: 500, summary: 'The guest kernel build failed' },
  KERNEL_OPTION_DROPPED: { http: 500, summary: 'A required kernel option did not survive configuration' },
  BOOT_ARGS_INVALID: { http: 400, summary: 'A boot argument value is invalid or unsafe' },

  // ---- image
  IMAGE_NOT_FOUND: { http: 404, summary: 'No such image' },
  IMAGE_INVALID: { http: 422, summary: 'The image is incomplete or does not match its manifest' },
  IMAGE_BUILD_FAILED: { http: 500, summary: 'The image build failed' },
  IMAGE_IN_USE: { http: 409, summary: 'A VM or snapshot still uses the image' },
  IMAGE_BUILD_LOCKED: { http: 409, summary: 'Another build of the same image is running' },

  // ---- vmm
  VMM_NOT_AVAILABLE: { http: 503, summary: 'The VMM binary is not available on this host' },
  VMM_START_FAILED: { http: 500, summary: 'The VMM process failed to start' },
  VMM_API_ERROR: { http: 502, summary: 'The VMM rejected a request' },
  VMM_NOT_ALLOWED_IN_STATE: { http: 409, summary: 'The VMM does not allow this action in its current state' },
  VMM_CRASHED: { http: 500, summary: 'The VMM process exited unexpectedly' },
  QMP_ERROR: { http: 502, summary: 'QEMU QMP returned an error' },
  ACCEL_UNAVAILABLE: { http: 503, summary: 'The requested accelerator cannot be used here' },
  VMM_OUT_OF_MEMORY: { http: 500, summary: 'The VMM was killed inside its cgroup for going over its memory limit' },
  VMM_USER_MISSING: { http: 500, summary: 'The unprivileged user VMMs run as does not exist' },
  CGROUP_FAILED: { http: 500, summary: 'A cgroup for resource limits could not be set up' },

  // ---- network
  NET_POOL_EXHAUSTED: { http: 503, summary: 'No free address in the network pool' },
  NET_SETUP_FAILED: { http: 500, summary: 'Host network setup failed' },
  NET_INVALID_CONFIG: { http: 400, summary: 'The network configuration is invalid' },

  // ---- vm
  VM_NOT_FOUND: { http: 404, summary: 'No such VM' },
  VM_INVALID_STATE: { http: 409, summary: 'The VM is not in a state that allows this' },
  VM_BOOT_TIMEOUT: { http: 504, summary: 'The VM did not become ready in time' },
  VM_NAME_TAKEN: { http: 409, summary: 'A VM with this name exists' },
  VM_LIMIT_REACHED: { http: 503, summary: 'The host runs as many VMs as allowed' },

  // ---- doctor / diagnostics
  CONSOLE_UNREADABLE: { http: 422, summary: 'The console log cannot be read' },

  // ---- guest agent (src/agent/)
  AGENT_UNAVAILABLE: { http: 503, summary: 'The VM has no agent channel, is not running, or its agent does not answer' },
  AGENT_FAILED: { http: 502, summary: 'The guest agent broke the protocol; its session was dropped' },
  AGENT_TIMEOUT: { http: 504, summary: 'The guest agent did not answer in time' },
  GUEST_PATH_NOT_FOUND: { http: 404, summary: 'No such file or directory in the guest' },
  GUEST_PATH_EXISTS: { http: 409, summary: 'The path exists in the guest' },
  GUEST_PERMISSION_DENIED: { http: 403, summary: 'The guest refused the operation (permissions)' },
  GUEST_OP_FAILED: { http: 422, summary: 'The guest could not carry out the operation (details.errno: ENOTDIR, EISDIR, ENOSPC, …)' },
  PROC_NOT_FOUND: { http: 404, summary: 'No such process in the guest agent' },

  // ---- store
  STORE_ERROR: { http: 500, summary: 'The state database failed' },

  // ---- api / auth
  UNAUTHORIZED: { http: 401, summary: 'Missing or invalid credentials' },
  FORBIDDEN: { http: 403, summary: 'Credentials do not grant access to this resource' },
  RATE_LIMITED: { http: 429, summary: 'Too many requests' },
  CONTROLLER_UNREACHABLE: { http: 503, summary: 'The controller does not answer' },

  // ---- tenancy
  QUOTA_EXCEEDED: { http: 403, summary: "The tenant's quota does not allow this (details: limit, used, max)" },
  TENANT_NOT_FOUND: { http: 404, summary: 'No such tenant' },
  TENANT_EXISTS: { http: 409, summary: 'A tenant with this id exists' },
  TENANT_IN_USE: { http: 409, summary: 'The tenant still owns VMs or snapshots' },
  KEY_NOT_FOUND: { http: 404, summary: 'No such API key' },

  // ---- desktop
  VIEWER_TOKEN_INVALID: { http: 401, summary: 'The viewer token is missing, expired, tampered or for another VM' },
  VIEWER_ORIGIN_REFUSED: { http: 403, summary: 'A browser page from another origin may not open this desktop' },
  VIEWER_LIMIT: { http: 429, summary: 'The VM has as many viewers as allowed' },
  VM_UNREACHABLE: { http: 502, summary: 'The VM desktop does not answer' },
  TOKEN_SCOPE: { http: 403, summary: 'The token is valid but its scope does not allow this (a view-only viewer sending input, a CDP token on the desktop)' },
  VIEWER_NOT_IN_CONTROL: { http: 409, summary: 'Another viewer is in control of the desktop; request control first' },
  CDP_UNAVAILABLE: { http: 409, summary: 'The VM has no browser to debug (CDP is for browser-profile VMs)' },
  RECORDING_NOT_FOUND: { http: 404, summary: 'No such session recording' },

  // ---- snapshot
  SNAPSHOT_NOT_FOUND: { http: 404, summary: 'No such snapshot' },
  SNAPSHOT_FAILED: { http: 500, summary: 'Taking or restoring a snapshot failed' },
  SNAPSHOT_IN_USE: { http: 409, summary: 'VMs still depend on the snapshot (force=convert or force=destroy them first)' },
  SNAPSHOT_FIXED: { http: 400, summary: 'The snapshot fixes this option: a clone cannot have another value' },
  SNAPSHOT_VOLUME_ATTACHED: { http: 409, summary: 'The VM has a volume attached: a golden snapshot would hold its mounted filesystem (detach it first)' },

  // ---- volume
  VOLUME_NOT_FOUND: { http: 404, summary: 'No such volume' },
  VOLUME_EXISTS: { http: 409, summary: 'A volume with this name exists' },
  VOLUME_IN_USE: { http: 409, summary: 'The volume is attached (read-write to another VM, or at all for a writer, a removal or an offline resize)' },
  VOLUME_SLOTS_FULL: { http: 409, summary: 'The VM has no free volume slot (or none at all: it was started without them)' },
  VOLUME_ATTACH_FAILED: { http: 500, summary: 'The volume could not be attached to or mounted in the VM' },
  // ---- pools
  POOL_NOT_FOUND: { http: 404, summary: 'No such warm pool' },
  POOL_EMPTY: { http: 503, summary: 'The warm pool has no ready VM right now (the claim fell back, or retry)' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class HangarError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HangarError';
    this.code = code;
    this.details = details;
  }

  get httpStatus(): number {
    return ERRORS[this.code].http;
  }

  toJSON(): { code: ErrorCode; message: string; details: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isHangarError(e: unknown, code?: ErrorCode): e is HangarError {
  return e instanceof HangarError && (code === undefined || e.code === code);
}

/** Wraps anything thrown into a HangarError, keeping the original as the cause. */
export function toHangarError(e: unknown, fallback: ErrorCode = 'INTERNAL'): HangarError {
  if (e instanceof HangarError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new HangarError(fallback, message, {}, { cause: e });
}

/** CLI exit codes (the README's table): 0 ok, 1 a finding/check failed (lint, doctor, a VM that did not become ready:
 * the commands decide that, no error code maps to 1), 2 bad input (invalid, unknown, not found, a conflict with the
 * current state, missing or wrong credentials, unreadable), 3 host problem, 4 other error, 5 the controller does
 * not answer. */
const HOST_PROBLEMS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'NOT_ROOT', 'MISSING_HOST_TOOLS', 'NO_DISK_SPACE', 'NO_APT_MIRROR', 'VMM_NOT_AVAILABLE', 'ACCEL_UNAVAILABLE', 'NET_POOL_EXHAUSTED', 'VM_LIMIT_REACHED',
  'VMM_USER_MISSING', 'CGROUP_FAILED',
]);
const UNREADABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['KERNEL_UNREADABLE', 'CONSOLE_UNREADABLE']);
/** Bad input by HTTP status: validation, credentials, not found, conflict, too large. */
const BAD_INPUT_STATUS: ReadonlySet<number> = new Set([400, 401, 403, 404, 409, 413, 414]);

export function exitCodeOf(code: ErrorCode): number {
  if (code === 'CONTROLLER_UNREACHABLE') return 5;
  if (HOST_PROBLEMS.has(code)) return 3;
  if (UNREADABLE.has(code) || BAD_INPUT_STATUS.has(ERRORS[code].http)) return 2;
  return 4;
}
