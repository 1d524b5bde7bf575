// `hangar tenant …`, `hangar key …` and `hangar audit`: tenants with their quotas, API keys (the secret is printed
// once, at creation) and the audit log, over the controller's admin routes (an admin key: the token file's is one).
import { HangarError } from '../errors.js';
import type { AuditEntry, KeyRecord, TenantRecord } from '../store/tenancy.js';
import { parseDuration, QUOTA_NAMES, SCOPES, type Quotas, type Usage } from '../tenancy/keys.js';
import { clientFromEnv } from './client.js';
import { jsonOption, need, table, type CliIO, type Command, type OptionSpec, type ParsedArgs } from './command.js';

type TenantView = TenantRecord & { usage: Usage };

const FLAG: Record<keyof Quotas, string> = { vms: 'max-vms', vcpus: 'max-vcpus', memMiB: 'max-mem', diskMiB: 'max-disk', viewers: 'max-viewers' };
const quotaOptions = {
  'max-vms': { type: 'string', arg: 'N|none', description: 'VMs the tenant may have at once' },
  'max-vcpus': { type: 'string', arg: 'N|none', description: 'vCPUs over all its VMs' },
  'max-mem': { type: 'string', arg: 'MIB|none', description: 'memory over all its VMs, MiB' },
  'max-disk': { type: 'string', arg: 'MIB|none', description: 'VM disks over all its VMs, MiB' },
  'max-viewers': { type: 'string', arg: 'N|none', description: 'desktop viewers open at once over all its VMs' },
} as const satisfies OptionSpec;

/** The quotas the flags give ('none' lifts one). Pure. */
export function quotasFrom(values: ParsedArgs['values']): Partial<Quotas> {
  const out: Partial<Quotas> = {};
  for (const k of QUOTA_NAMES) {
    const v = values[FLAG[k]];
    if (typeof v !== 'string') continue;
    if (v === 'none') { out[k] = null; continue; }
    if (!/^[0-9]{1,10}$/.test(v)) throw new HangarError('INVALID_ARGUMENT', `--${FLAG[k]} must be a whole number or none (got ${JSON.stringify(v)})`, { field: `--${FLAG[k]}`, flag: `--${FLAG[k]}`, reason: 'type' });
    out[k] = Number(v);
  }
  return out;
}

const lim = (v: number | null): string => (v === null ? '-' : String(v));

export function tenantTable(list: TenantView[]): string {
  return table(['TENANT', 'VMS', 'VCPUS', 'MEM MIB', 'DISK MIB', 'VIEWERS', 'CREATED'], list.map((t) => [
    t.id, `${t.usage.vms}/${lim(t.quotas.vms)}`, `${t.usage.vcpus}/${lim(t.quotas.vcpus)}`, `${t.usage.memMiB}/${lim(t.quotas.memMiB)}`,
    `${t.usage.diskMiB}/${lim(t.quotas.diskMiB)}`, lim(t.quotas.viewers), t.createdAt,
  ]));
}

export function keyTable(list: KeyRecord[]): string {
  return table(['KEY', 'TENANT', 'SCOPE', 'NAME', 'EXPIRES', 'STATE'], list.map((k) => [
    k.id, k.tenant, k.scope, k.name ?? '-', k.expiresAt ?? 'never', k.revokedAt ? `revoked ${k.revokedAt}` : k.expiresAt && Date.parse(k.expiresAt) <= Date.now() ? 'expired' : 'active',
  ]));
}

export function auditTable(list: AuditEntry[]): string {
  return table(['AT', 'KEY', 'TENANT', 'ACTION', 'RESOURCE', 'STATUS'], list.map((e) => [
    e.at, e.keyId ?? '-', e.tenant ?? '-', e.action, e.resource ?? '-', e.code ? `${e.status} ${e.code}` : String(e.status),
  ]));
}

function print(io: CliIO, asJson: boolean, value: unknown, text: string): void {
  io.out(asJson ? JSON.stringify(value) + '\n' : text);
}

const api = (io: CliIO) => clientFromEnv(io.env ?? process.env);
const TENANT_ARG = { name: 'TENANT', description: 'the tenant id (lower-case letters, digits and -)' };
const enc = encodeURIComponent;

export const commands: Command[] = [
  {
    path: ['tenant', 'create'], summary: 'Create a tenant, with its quotas', usage: 'TENANT [--max-vms N] [--max-vcpus N] [--max-mem MIB] [--max-disk MIB] [--max-viewers N] [--json]',
    args: [TENANT_ARG], options: { ...quotaOptions, ...jsonOption },
    details: 'A quota left out is no limit. Then give the tenant a key: hangar key create --tenant TENANT --scope write.',
    examples: ['hangar tenant create acme --max-vms 3 --max-mem 8192', 'hangar tenant create lab --json'],
    run: async ({ values, positionals }, io) => {
      const t = await api(io).request<TenantView>('POST', '/v1/tenants', { id: need(positionals, 'TENANT'), quotas: quotasFrom(values) });
      print(io, values.json === true, t, tenantTable([t]));
      return 0;
    },
  },
  {
    path: ['tenant', 'ls'], summary: 'List tenants with their usage and quotas (used/max)', usage: '[--json]', options: { ...jsonOption },
    examples: ['hangar tenant ls', 'hangar tenant ls --json'],
    run: async ({ values }, io) => {
      const { tenants } = await api(io).request<{ tenants: TenantView[] }>('GET', '/v1/tenants');
      print(io, values.json === true, tenants, tenantTable(tenants));
      return 0;
    },
  },
  {
    path: ['tenant', 'show'], summary: "Show a tenant's usage and quotas", usage: 'TENANT [--json]', args: [TENANT_ARG], options: { ...jsonOption },
    examples: ['hangar tenant show acme'],
    run: async ({ values, positionals }, io) => {
      const t = await api(io).request<TenantView>('GET', `/v1/tenants/${enc(need(positionals, 'TENANT'))}`);
      print(io, values.json === true, t, tenantTable([t]));
      return 0;
    },
  },
  {
    path: ['tenant', 'set'], summary: "Change a tenant's quotas (none lifts one)", usage: 'TENANT [--max-vms N|none] [--max-vcpus N|none] [--max-mem MIB|none] [--max-disk MIB|none] [--max-viewers N|none] [--json]',
    args: [TENANT_ARG], options: { ...quotaOptions, ...jsonOption },
    details: 'A quota below what the tenant holds today refuses only what comes next; nothing running is stopped.',
    examples: ['hangar tenant set acme --max-vms 5 --max-viewers none'],
    run: async ({ values, positionals }, io) => {
      const quotas = quotasFrom(values);
      if (Object.keys(quotas).length === 0) throw new HangarError('INVALID_ARGUMENT', 'give at least one quota to change (--max-vms, --max-vcpus, --max-mem, --max-disk, --max-viewers)', { field: '--max-vms', reason: 'required' });
      const t = await api(io).request<TenantView>('PATCH', `/v1/tenants/${enc(need(positionals, 'TENANT'))}`, { quotas });
      print(io, values.json === true, t, tenantTable([t]));
      return 0;
    },
  },
  {
    path: ['tenant', 'rm'], summary: 'Remove a tenant and its keys (refused while it owns VMs or snapshots)', usage: 'TENANT [--json]', args: [TENANT_ARG], options: { ...jsonOption },
    examples: ['hangar tenant rm acme'],
    run: async ({ values, positionals }, io) => {
      const id = need(positionals, 'TENANT');
      await api(io).request('DELETE', `/v1/tenants/${enc(id)}`);
      print(io, values.json === true, { removed: id }, `tenant ${id} removed\n`);
      return 0;
    },
  },
  {
    path: ['key', 'create'], summary: 'Create an API key for a tenant; the key is printed this once', usage: '--tenant TENANT --scope admin|write|read|viewer [--expires 30d] [--name NAME] [--json]',
    options: {
      tenant: { type: 'string', arg: 'TENANT', description: 'the tenant the key acts for' },
      scope: { type: 'string', arg: SCOPES.join('|'), description: 'admin: everything, every tenant; write: the tenant\'s VMs and snapshots; read: look only; viewer: viewer tokens only' },
      expires: { type: 'string', arg: 'DURATION', description: 'the key stops working after this long: 30d, 12h, 90m (default: never)' },
      name: { type: 'string', arg: 'NAME', description: 'what the key is for (shown by key ls)' },
      ...jsonOption,
    },
    details: 'Only its hash is stored: keep the printed key (HANGAR_TOKEN=… for the CLI, Authorization: Bearer … for the API).',
    examples: ['hangar key create --tenant acme --scope write --expires 30d --name ci', 'hangar key create --tenant acme --scope viewer --json'],
    run: async ({ values }, io) => {
      if (typeof values.tenant !== 'string') throw new HangarError('INVALID_ARGUMENT', 'missing --tenant', { field: '--tenant', flag: '--tenant', reason: 'required' });
      if (typeof values.scope !== 'string') throw new HangarError('INVALID_ARGUMENT', `missing --scope (${SCOPES.join(', ')})`, { field: '--scope', flag: '--scope', reason: 'required' });
      const body = {
        tenant: values.tenant, scope: values.scope,
        ...(typeof values.name === 'string' ? { name: values.name } : {}),
        ...(typeof values.expires === 'string' ? { expiresInSeconds: parseDuration(values.expires, '--expires') } : {}),
      };
      const k = await api(io).request<KeyRecord & { secret: string }>('POST', '/v1/keys', body);
      print(io, values.json === true, k, `${k.secret}\n`);
      if (values.json !== true) io.err(`hangar: key ${k.id} for tenant ${k.tenant} (scope ${k.scope}${k.expiresAt ? `, expires ${k.expiresAt}` : ''}); it is not shown again\n`);
      return 0;
    },
  },
  {
    path: ['key', 'ls'], summary: 'List API keys (never their secrets)', usage: '[--tenant TENANT] [--json]',
    options: { tenant: { type: 'string', arg: 'TENANT', description: 'only this tenant\'s keys' }, ...jsonOption },
    examples: ['hangar key ls', 'hangar key ls --tenant acme --json'],
    run: async ({ values }, io) => {
      const { keys } = await api(io).request<{ keys: KeyRecord[] }>('GET', `/v1/keys${typeof values.tenant === 'string' ? `?tenant=${enc(values.tenant)}` : ''}`);
      print(io, values.json === true, keys, keyTable(keys));
      return 0;
    },
  },
  {
    path: ['key', 'rm'], summary: 'Revoke an API key: refused from its next request on', usage: 'KEY [--json]',
    args: [{ name: 'KEY', description: 'the key id (key-0123abcd), as key ls shows it' }], options: { ...jsonOption },
    examples: ['hangar key rm key-0123abcd'],
    run: async ({ values, positionals }, io) => {
      const k = await api(io).request<KeyRecord>('DELETE', `/v1/keys/${enc(need(positionals, 'KEY'))}`);
      print(io, values.json === true, k, `key ${k.id} revoked\n`);
      return 0;
    },
  },
  {
    path: ['audit'], summary: 'The audit log: which key did what to which resource, when, with what result', usage: '[--tenant TENANT] [--key KEY] [--resource ID] [--since 1h|ISO] [--limit N] [--json]',
    options: {
      tenant: { type: 'string', arg: 'TENANT', description: 'entries of this tenant\'s keys' },
      key: { type: 'string', arg: 'KEY', description: 'entries of this key (key-0123abcd)' },
      resource: { type: 'string', arg: 'ID', description: 'entries about this VM, snapshot, key or tenant' },
      since: { type: 'string', arg: 'WHEN', description: 'entries since this long ago (30m, 1d) or this ISO time' },
      limit: { type: 'string', arg: 'N', int: true, description: 'the newest N entries (default 100)' },
      ...jsonOption,
    },
    details: 'Every call that changes something is recorded, refused ones too, with the key\'s id (never the key). Admin keys only.',
    examples: ['hangar audit --since 1h', 'hangar audit --tenant acme --json'],
    run: async ({ values }, io) => {
      const q = new URLSearchParams();
      for (const k of ['tenant', 'key', 'resource', 'limit'] as const) if (typeof values[k] === 'string') q.set(k, values[k] as string);
      if (typeof values.since === 'string') {
        q.set('since', /^[0-9]+[smhdw]?$/.test(values.since) ? new Date(Date.now() - parseDuration(values.since, '--since') * 1000).toISOString() : values.since);
      }
      const { entries } = await api(io).request<{ entries: AuditEntry[] }>('GET', `/v1/audit${q.size ? `?${q}` : ''}`);
      print(io, values.json === true, entries, auditTable(entries));
      return 0;
    },
  },
];
