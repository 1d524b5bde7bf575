// `hangar pool …`: warm pools of ready VMs of a template (a snapshot, or a profile the pool snapshots), claimed by
// `POST /v1/vms { "pool": NAME }` in milliseconds. Pools are the operator's: create and rm need an admin key.
import { HangarError } from '../errors.js';
import type { PoolView } from '../pool/plan.js';
import { clientFromEnv } from './client.js';
import { jsonOption, need, table, type CliIO, type Command } from './command.js';
import { fmtAge } from './vm-view.js';

export function poolTable(list: PoolView[], now = Date.now()): string {
  return table(['NAME', 'TEMPLATE', 'SNAPSHOT', 'SIZE', 'READY', 'FILLING', 'CLAIMS', 'MISSES', 'REFILL', 'AGE'], list.map((p) => [
    p.name, 'snapshot' in p.template ? `snapshot ${p.template.snapshot}` : `profile ${p.template.profile}`, p.snapshot ?? '(making)', p.size, p.ready, p.filling,
    p.claims, p.misses, p.refillMs === null ? '-' : `${(p.refillMs / 1000).toFixed(1)}s`, fmtAge(p.createdAt, now),
  ]));
}

function print(io: CliIO, asJson: boolean, value: unknown, text: string): void {
  io.out(asJson ? JSON.stringify(value) + '\n' : text);
}

const NAME_ARG = { name: 'NAME', description: 'the pool\'s name' };

export const commands: Command[] = [
  {
    path: ['pool', 'create'],
    summary: 'Create a warm pool that keeps SIZE ready VMs of a snapshot (--snapshot) or of a profile (--profile: the pool snapshots a VM booted for it)',
    usage: 'NAME --size N (--snapshot ID | --profile PROFILE) [--json]', args: [NAME_ARG],
    details: 'Members wait restored and paused, in no tenant\'s list; a claim (POST /v1/vms {"pool": NAME}) resumes one and gives it its own name, hostname, machine-id, clock and entropy.',
    options: {
      size: { type: 'string', arg: 'N', description: 'ready VMs to keep (0-64)' },
      snapshot: { type: 'string', arg: 'ID', description: 'clone this golden snapshot' },
      profile: { type: 'string', arg: 'PROFILE', description: 'snapshot a VM booted from this profile\'s newest image, then clone that' },
      ...jsonOption,
    },
    examples: ['hangar pool create desk --size 3 --profile desktop', 'hangar pool create mine --size 2 --snapshot snap-0123abcd'],
    run: async ({ values, positionals }, io) => {
      const size = Number(values.size);
      if (typeof values.size !== 'string' || !/^[0-9]+$/.test(values.size)) throw new HangarError('INVALID_ARGUMENT', '--size N is required (a whole number)', { field: 'size' });
      const body = { name: need(positionals, 'NAME'), size, ...(typeof values.snapshot === 'string' ? { snapshot: values.snapshot } : {}), ...(typeof values.profile === 'string' ? { profile: values.profile } : {}) };
      const p = await clientFromEnv(io.env).request<PoolView>('POST', '/v1/pools', body);
      print(io, values.json === true, p, poolTable([p]) + `\nclaim one: curl -X POST $HANGAR_URL/v1/vms -d '{"pool":"${p.name}"}'\n`);
      return 0;
    },
  },
  {
    path: ['pool', 'ls'], summary: 'List warm pools: size, ready members, claims, misses, last refill time', usage: '[--json]', options: jsonOption,
    examples: ['hangar pool ls'],
    run: async ({ values }, io) => {
      const { pools } = await clientFromEnv(io.env).request<{ pools: PoolView[] }>('GET', '/v1/pools');
      print(io, values.json === true, pools, pools.length ? poolTable(pools) : 'no pools (make one with: hangar pool create NAME --size N --profile desktop)\n');
      return 0;
    },
  },
  {
    path: ['pool', 'show'], summary: 'Show a warm pool', usage: 'NAME [--json]', args: [NAME_ARG], options: jsonOption,
    examples: ['hangar pool show desk'],
    run: async ({ values, positionals }, io) => {
      const p = await clientFromEnv(io.env).request<PoolView>('GET', `/v1/pools/${encodeURIComponent(need(positionals, 'NAME'))}`);
      print(io, values.json === true, p, poolTable([p]));
      return 0;
    },
  },
  {
    path: ['pool', 'rm'], summary: 'Remove a warm pool: its waiting VMs are destroyed (claimed ones stay)', usage: 'NAME [--json]', args: [NAME_ARG], options: jsonOption,
    examples: ['hangar pool rm desk'],
    run: async ({ values, positionals }, io) => {
      const name = need(positionals, 'NAME');
      await clientFromEnv(io.env).request('DELETE', `/v1/pools/${encodeURIComponent(name)}`);
      print(io, values.json === true, { name, deleted: true }, `removed pool ${name}\n`);
      return 0;
    },
  },
];
