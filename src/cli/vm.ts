// `hangar vm …`: the controller's API from the command line. --json everywhere; exit codes scripts can rely on
// (0 ok, 1 the VM failed, others from the error registry).
import type { VmView } from '../api/routes.js';
import { clientFromEnv, type ApiClient } from './client.js';
import { need, table, type CliIO, type Command, type OptionSpec } from './command.js';

const json = { json: { type: 'boolean' } } as const satisfies OptionSpec;

const fmtAge = (iso: string): string => {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
};

export function vmTable(vms: VmView[]): string {
  return table(['ID', 'NAME', 'STATE', 'IP', 'VMM', 'CPU', 'MEM', 'BOOT', 'AGE'], vms.map((v) => [
    v.id, v.name, v.state, v.network?.ip ?? '-', v.vmm, v.vcpus, `${v.memMiB}M`, v.bootMs ? `${(v.bootMs / 1000).toFixed(1)}s` : '-', fmtAge(v.createdAt),
  ]));
}

function show(v: VmView, io: CliIO): void {
  io.out(vmTable([v]));
  if (v.lastError) io.out(`\nlast error: ${v.lastError.code}: ${v.lastError.message}\n`);
}

/** Follows the VM's lifecycle events until it is ready or failed, printing each phase. */
async function waitReady(api: ApiClient, id: string, io: CliIO, quiet: boolean): Promise<VmView> {
  const t0 = Date.now();
  const ctl = new AbortController();
  const poll = setInterval(() => {
    void api.request<VmView>('GET', `/v1/vms/${id}`).then((v) => { if (v.state === 'ready' || v.state === 'failed') ctl.abort(); }, () => undefined);
  }, 1000);
  try {
    await api.events(`/v1/events?vm=${encodeURIComponent(id)}`, (type, data) => {
      const d = (data as { data?: { to?: string } }).data;
      if (type === 'vm.state' && d?.to) {
        if (!quiet) io.err(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${id} ${d.to}\n`);
        return d.to === 'ready' || d.to === 'failed';
      }
      return false;
    }, ctl.signal).catch((e: unknown) => { if (!ctl.signal.aborted) throw e; });
  } finally {
    clearInterval(poll);
  }
  return api.request<VmView>('GET', `/v1/vms/${id}`);
}

const simple = (action: 'stop' | 'start' | 'pause' | 'resume'): Command => ({
  path: ['vm', action], summary: `${action[0]!.toUpperCase()}${action.slice(1)} a VM`, usage: 'ID [--json]', options: json,
  run: async ({ values, positionals }, io) => {
    const v = await clientFromEnv().request<VmView>('POST', `/v1/vms/${encodeURIComponent(need(positionals, 'VM id'))}/${action}`);
    if (values.json) io.out(JSON.stringify(v) + '\n');
    else show(v, io);
    return 0;
  },
});

export const commands: Command[] = [
  {
    path: ['vm', 'create'],
    summary: 'Create a VM and wait until it is ready (progress on stderr)',
    usage: '[--image REF] [--profile desktop|browser] [--vcpus N] [--mem MIB] [--name NAME] [--ttl SECONDS] [--vmm qemu|firecracker] [--no-wait] [--quiet] [--json]',
    options: {
      ...json, image: { type: 'string' }, profile: { type: 'string' }, vcpus: { type: 'string' }, mem: { type: 'string' },
      name: { type: 'string' }, ttl: { type: 'string' }, vmm: { type: 'string' }, 'no-wait': { type: 'boolean' }, quiet: { type: 'boolean' },
      'from-snapshot': { type: 'string' },
    },
    run: async ({ values }, io) => {
      const num = (v: unknown): number | undefined => (typeof v === 'string' ? (/^\d+$/.test(v) ? Number(v) : (v as unknown as number)) : undefined);
      const body: Record<string, unknown> = {};
      if (values.image) body.image = values.image;
      if (values.profile) body.profile = values.profile;
      if (values.vcpus) body.vcpus = num(values.vcpus);
      if (values.mem) body.memMiB = num(values.mem);
      if (values.name) body.name = values.name;
      if (values.ttl) body.ttlSeconds = num(values.ttl);
      if (values.vmm) body.vmm = values.vmm;
      if (values['from-snapshot']) body.fromSnapshot = values['from-snapshot'];
      const api = clientFromEnv();
      let v = await api.request<VmView>('POST', '/v1/vms', body);
      if (!values['no-wait']) v = await waitReady(api, v.id, io, values.quiet === true || values.json === true);
      if (values.json) io.out(JSON.stringify(v) + '\n');
      else show(v, io);
      return v.state === 'failed' ? 1 : 0;
    },
  },
  {
    path: ['vm', 'ls'], summary: 'List VMs', usage: '[--json]', options: json,
    run: async ({ values }, io) => {
      const { vms } = await clientFromEnv().request<{ vms: VmView[] }>('GET', '/v1/vms');
      io.out(values.json ? JSON.stringify(vms) + '\n' : vmTable(vms));
      return 0;
    },
  },
  {
    path: ['vm', 'show'], summary: 'Show a VM', usage: 'ID [--json]', options: json,
    run: async ({ values, positionals }, io) => {
      const v = await clientFromEnv().request<VmView>('GET', `/v1/vms/${encodeURIComponent(need(positionals, 'VM id'))}`);
      if (values.json) io.out(JSON.stringify(v) + '\n');
      else show(v, io);
      return 0;
    },
  },
  {
    path: ['vm', 'rm'], summary: 'Destroy a VM and everything it holds', usage: 'ID [--json]', options: json,
    run: async ({ values, positionals }, io) => {
      const id = need(positionals, 'VM id');
      await clientFromEnv().request('DELETE', `/v1/vms/${encodeURIComponent(id)}`);
      io.out(values.json ? JSON.stringify({ id, destroyed: true }) + '\n' : `destroyed ${id}\n`);
      return 0;
    },
  },
  simple('stop'), simple('start'), simple('pause'), simple('resume'),
  {
    path: ['vm', 'console'], summary: "The VM's serial console (tail, or --follow)", usage: 'ID [--lines N] [--follow]',
    options: { lines: { type: 'string' }, follow: { type: 'boolean' } },
    run: async ({ values, positionals }, io) => {
      const id = encodeURIComponent(need(positionals, 'VM id'));
      const lines = typeof values.lines === 'string' ? `&lines=${encodeURIComponent(values.lines)}` : '';
      const api = clientFromEnv();
      if (!values.follow) {
        io.out(await api.request<string>('GET', `/v1/vms/${id}/console?follow=false${lines}`));
        return 0;
      }
      const res = await fetch(`${api.url}/v1/vms/${id}/console?follow=true${lines}`, { headers: { authorization: `Bearer ${(api as unknown as { token: string }).token}` } });
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) io.out(Buffer.from(chunk).toString());
      return 0;
    },
  },
  {
    path: ['vm', 'open'], summary: "Print a short-lived URL that opens the VM's desktop in a browser", usage: 'ID [--json]', options: json,
    run: async ({ values, positionals }, io) => {
      const api = clientFromEnv();
      const r = await api.request<{ url: string; expiresAt: string }>('POST', `/v1/vms/${encodeURIComponent(need(positionals, 'VM id'))}/viewer`);
      const url = r.url.startsWith('http') ? r.url : api.url + r.url;
      io.out(values.json ? JSON.stringify({ ...r, url }) + '\n' : `${url}\n(valid until ${r.expiresAt})\n`);
      return 0;
    },
  },
];
