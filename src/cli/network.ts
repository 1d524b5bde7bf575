// `hangar vm network ID [flags]`: a VM's network policy (egress mode, allow/deny entries, upstream proxy, group,
// limits). Without a change flag it shows the policy; with one it PATCHes /v1/vms/:id/network (fields not given
// keep their value; a running VM's change is live within ~100 ms) and shows the result. `hangar vm show` prints
// the same lines (`policyLines`). A proxy's credentials are never printed: the API redacts the password and the
// CLI redacts whatever it shows or echoes once more (`redactProxy`). Flags are checked here, once, before any
// request; the controller's normalisePolicy then checks the entries themselves.
import { HangarError, isHangarError } from '../errors.js';
import { clientFromEnv } from './client.js';
import { jsonOption, need, type CliIO, type Command, type OptionSpec, type ParsedArgs } from './command.js';
import { resolveVm, VM_ARG } from './resolve.js';

export const EGRESS_MODES = ['none', 'internet', 'allowlist'] as const;

/** The API's view of a VM's policy (GET/PATCH /v1/vms/:id/network). */
export interface NetworkPolicyView {
  vm: string;
  egress: { mode: string; allow: string[]; deny: string[]; proxy: string | null };
  group: string | null;
  limits: { bandwidthMbit?: number | null; connections?: number | null };
  default: boolean;
}

/** Hides a URL's credentials (password, and the user too when `all`), in any text. Pure. */
export function redactProxy(text: string): string {
  return text.replace(/\b((?:https?|socks5h?|socks4a?):\/\/)([^\s/@:"']*)(?::[^\s/@"']*)?@/gi, (_m, scheme: string, user: string) => `${scheme}${user ? `${user}:***` : '***'}@`);
}

const options = {
  egress: { type: 'string', arg: 'MODE', description: `${EGRESS_MODES.join(' | ')}: no way out, anywhere public, or only what --allow names` },
  allow: { type: 'string', arg: 'ENTRY', repeat: true, description: 'an IPv4 address or CIDR, a host name or "*.domain" (repeat; replaces the list; none empties it)' },
  deny: { type: 'string', arg: 'ENTRY', repeat: true, description: 'refused in every mode (repeat; replaces the list; none empties it)' },
  proxy: { type: 'string', arg: 'URL', description: 'upstream proxy for all of its TCP, http://user:pass@host:port or socks5://…; none removes it' },
  bandwidth: { type: 'string', arg: 'MBIT', description: 'bandwidth limit in Mbit/s, each direction; none lifts it' },
  connections: { type: 'string', arg: 'N', description: 'concurrent connection limit; none lifts it' },
  group: { type: 'string', arg: 'NAME', description: 'VMs of one group may reach each other; none leaves it' },
  ...jsonOption,
} as const satisfies OptionSpec;

const bad = (flag: string, message: string, got?: string): HangarError =>
  new HangarError('INVALID_ARGUMENT', `${flag} ${message}${got === undefined ? '' : ` (got ${JSON.stringify(redactProxy(got))})`}`, { field: flag, flag });

function limit(v: unknown, flag: string, max: number): number | null | undefined {
  if (typeof v !== 'string') return undefined;
  if (v === 'none') return null;
  if (!/^[0-9]{1,10}$/.test(v) || Number(v) < 1 || Number(v) > max) throw bad(flag, `must be a whole number from 1 to ${max}, or none`, v);
  return Number(v);
}

function list(v: unknown, flag: string): string[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const items = (v as string[]).flatMap((s) => s.split(',')).map((s) => s.trim());
  if (items.includes('none')) {
    if (items.length > 1) throw bad(flag, 'none empties the list and goes alone');
    return [];
  }
  if (items.some((s) => !s)) throw bad(flag, 'entries must not be empty');
  return items;
}

/** The PATCH body the flags ask for; {} when they ask for no change. Throws INVALID_ARGUMENT naming the flag. Pure. */
export function policyBody(values: ParsedArgs['values']): Record<string, unknown> {
  const egress: Record<string, unknown> = {};
  const mode = values.egress;
  if (typeof mode === 'string') {
    if (!(EGRESS_MODES as readonly string[]).includes(mode)) throw bad('--egress', `must be one of ${EGRESS_MODES.join(', ')}`, mode);
    egress.mode = mode;
  }
  const allow = list(values.allow, '--allow');
  if (allow) egress.allow = allow;
  const deny = list(values.deny, '--deny');
  if (deny) egress.deny = deny;
  const proxy = values.proxy;
  if (typeof proxy === 'string') {
    if (proxy === 'none') egress.proxy = null;
    else {
      let u: URL | null = null;
      try { u = new URL(proxy); } catch { /* below */ }
      if (!u || !['http:', 'socks5:'].includes(u.protocol) || !u.hostname || !u.port) throw bad('--proxy', 'must be http://[user:pass@]host:port or socks5://[user:pass@]host:port, or none', proxy);
      egress.proxy = proxy;
    }
  }
  const body: Record<string, unknown> = {};
  if (Object.keys(egress).length) body.egress = egress;
  const group = values.group;
  if (typeof group === 'string') {
    if (group !== 'none' && !/^[a-z0-9][a-z0-9_-]{0,31}$/.test(group)) throw bad('--group', "must be lowercase letters, digits, '-' or '_' (at most 32), or none", group);
    body.group = group === 'none' ? null : group;
  }
  const limits: Record<string, unknown> = {};
  const bw = limit(values.bandwidth, '--bandwidth', 100_000);
  if (bw !== undefined) limits.bandwidthMbit = bw;
  const conns = limit(values.connections, '--connections', 1_000_000);
  if (conns !== undefined) limits.connections = conns;
  if (Object.keys(limits).length) body.limits = limits;
  return body;
}

const dash = (l: readonly string[]): string => (l.length ? l.join(', ') : '-');
const lim = (v: number | null | undefined, unit = ''): string => (v === null || v === undefined ? 'none' : `${v}${unit}`);

/** The policy, one field per line (`vm network` and `vm show`); the proxy always redacted. Pure. */
export function policyLines(p: NetworkPolicyView): [string, string][] {
  return [
    ['egress', `${p.egress.mode}${p.default ? ' (the default policy)' : ''}`],
    ['allow', dash(p.egress.allow)],
    ['deny', dash(p.egress.deny)],
    ['proxy', p.egress.proxy ? redactProxy(p.egress.proxy) : 'none'],
    ['group', p.group ?? 'none'],
    ['bandwidth', lim(p.limits.bandwidthMbit, ' Mbit/s')],
    ['connections', lim(p.limits.connections)],
  ];
}

/** `policyLines` as text; `prefix` names each field (vm show: "network egress:"). Pure. */
export function policyText(p: NetworkPolicyView, prefix = ''): string {
  const rows = policyLines(p).map(([k, v]): [string, string] => [`${prefix}${k}`, v]);
  const w = Math.max(...rows.map(([k]) => k.length)) + 1;
  return rows.map(([k, v]) => `${`${k}:`.padEnd(w)} ${v}\n`).join('');
}

/** True for a policy view (not, say, an older controller's answer to an unknown route). Pure. */
export function isPolicyView(v: unknown): v is NetworkPolicyView {
  const e = (v as { egress?: { mode?: unknown } } | null)?.egress;
  return typeof e?.mode === 'string';
}

/** The view as printed with --json: the proxy redacted again (an older controller might not have). Pure. */
export function redactedView(p: NetworkPolicyView): NetworkPolicyView {
  return p.egress.proxy ? { ...p, egress: { ...p.egress, proxy: redactProxy(p.egress.proxy) } } : p;
}

/** API field of a policy error → the flag that set it. */
const POLICY_FLAGS: Record<string, string> = {
  'egress.mode': '--egress', 'egress.allow': '--allow', 'egress.deny': '--deny', 'egress.proxy': '--proxy', group: '--group',
  'limits.bandwidthMbit': '--bandwidth', 'limits.connections': '--connections',
};

function reworded(e: unknown): unknown {
  if (!isHangarError(e)) return e;
  const field = typeof e.details.field === 'string' ? e.details.field.replace(/^\/?(body[./])?/, '').replace(/\//g, '.').replace(/\[\d+\]$/, '') : '';
  const flag = Object.entries(POLICY_FLAGS).find(([f]) => field === f || field.startsWith(`${f}.`) || field.startsWith(`${f}[`))?.[1];
  const message = redactProxy(e.message);
  if (!flag && message === e.message) return e;
  return new HangarError(e.code, flag ? `${flag}: ${message}` : message, { ...e.details, ...(flag ? { flag } : {}) });
}

export const networkCommand: Command = {
  path: ['vm', 'network'],
  summary: "Show or change a VM's network policy (egress, allow/deny, proxy, group, limits)",
  usage: 'ID [--egress none|internet|allowlist] [--allow ENTRY]… [--deny ENTRY]… [--proxy URL|none] [--bandwidth MBIT|none] [--connections N|none] [--group NAME|none] [--json]',
  details: 'Without a change flag, prints the policy. With one, changes only what the flags name (a running VM\'s new policy '
    + 'is live within ~100 ms, no restart) and prints the result. --allow and --deny replace their list (repeat them, or '
    + 'give comma-separated entries; none empties it). With --proxy all of the VM\'s TCP leaves through that proxy and '
    + 'everything else it sends (UDP, ICMP) is dropped; its DNS still works. The proxy\'s password is never printed.',
  args: [VM_ARG],
  options,
  examples: [
    'hangar vm network alice',
    'hangar vm network alice --egress allowlist --allow github.com --allow "*.npmjs.org"',
    'hangar vm network alice --egress internet --proxy http://user:pass@proxy.example:3128 --bandwidth 50',
    'hangar vm network alice --proxy none --deny none --json',
  ],
  run: async (args: ParsedArgs, io: CliIO) => {
    const body = policyBody(args.values); // wrong flags: exit 2 before any request
    const api = clientFromEnv(io.env);
    const vm = await resolveVm(api, need(args.positionals, 'ID'));
    const path = `/v1/vms/${encodeURIComponent(vm.id)}/network`;
    let view: NetworkPolicyView;
    try {
      view = Object.keys(body).length ? await api.request<NetworkPolicyView>('PATCH', path, body) : await api.request<NetworkPolicyView>('GET', path);
    } catch (e) {
      throw reworded(e);
    }
    if (!isPolicyView(view)) throw new HangarError('INTERNAL', 'the controller answered without a network policy (is it older than this CLI?)', {});
    io.out(args.values.json ? JSON.stringify(redactedView(view)) + '\n' : policyText(view));
    return 0;
  },
};

export const commands: Command[] = [networkCommand];
