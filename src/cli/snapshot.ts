// `hangar snapshot …` (golden snapshots) and `hangar vm hibernate`: the controller's API from the command line.
// Clones are `hangar vm create --from-snapshot ID`; a hibernated VM comes back with `hangar vm resume ID`.
import type { VmView } from '../api/routes.js';
import type { SnapshotView } from '../snapshot/manifest.js';
import { clientFromEnv } from './client.js';
import { need, table, type CliIO, type Command, type OptionSpec } from './command.js';

const json = { json: { type: 'boolean' } } as const satisfies OptionSpec;

const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(0)}M`;

export function snapshotTable(list: SnapshotView[]): string {
  return table(['ID', 'IMAGE', 'VMM', 'CPU', 'MEM', 'GUEST IP', 'STATE', 'DISK', 'CREATED'], list.map((s) => {
    const state = Object.entries(s.sizes).filter(([k]) => k !== 'disk.ext4').reduce((a, [, v]) => a + v, 0);
    return [s.id, s.image, `${s.vmm} ${s.vmmVersion}`, s.vcpus, `${s.memMiB}M`, s.guest.ip, mib(state), mib(s.sizes['disk.ext4'] ?? 0), s.createdAt];
  }));
}

function print(io: CliIO, asJson: boolean, value: unknown, text: string): void {
  io.out(asJson ? JSON.stringify(value) + '\n' : text);
}

export const commands: Command[] = [
  {
    path: ['snapshot', 'create'],
    summary: 'Take a golden snapshot: of a ready VM (--vm), or of a VM booted from an image for it (--image)',
    usage: '(--vm ID | --image REF) [--json]',
    options: { ...json, vm: { type: 'string' }, image: { type: 'string' } },
    run: async ({ values }, io) => {
      const body: Record<string, unknown> = {};
      if (typeof values.vm === 'string') body.vm = values.vm;
      if (typeof values.image === 'string') body.image = values.image;
      if (Object.keys(body).length !== 1) {
        throw Object.assign(new TypeError('give exactly one of --vm ID or --image REF'), { code: 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' });
      }
      if (!values.json) io.err(body.image ? `booting ${String(body.image)} for the snapshot…\n` : `snapshotting ${String(body.vm)}…\n`);
      const s = await clientFromEnv().request<SnapshotView>('POST', '/v1/snapshots', body);
      print(io, values.json === true, s, snapshotTable([s]) + `\nclone it: hangar vm create --from-snapshot ${s.id}\n`);
      return 0;
    },
  },
  {
    path: ['snapshot', 'ls'], summary: 'List golden snapshots', usage: '[--json]', options: json,
    run: async ({ values }, io) => {
      const { snapshots } = await clientFromEnv().request<{ snapshots: SnapshotView[] }>('GET', '/v1/snapshots');
      print(io, values.json === true, snapshots, snapshotTable(snapshots));
      return 0;
    },
  },
  {
    path: ['snapshot', 'rm'], summary: 'Delete a golden snapshot (running clones keep running)', usage: 'ID [--json]', options: json,
    run: async ({ values, positionals }, io) => {
      const id = need(positionals, 'snapshot id');
      await clientFromEnv().request('DELETE', `/v1/snapshots/${encodeURIComponent(id)}`);
      print(io, values.json === true, { id, deleted: true }, `deleted ${id}\n`);
      return 0;
    },
  },
  {
    path: ['vm', 'hibernate'], summary: "Save a VM's memory to disk and stop it ('vm resume' restores it)", usage: 'ID [--json]', options: json,
    run: async ({ values, positionals }, io) => {
      const v = await clientFromEnv().request<VmView>('POST', `/v1/vms/${encodeURIComponent(need(positionals, 'VM id'))}/hibernate`);
      print(io, values.json === true, v, `${v.id} hibernated (${v.state})\n`);
      return 0;
    },
  },
];
