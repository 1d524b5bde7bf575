// `hangar snapshot …` (golden snapshots) and `hangar vm hibernate`: the controller's API from the command line.
// Clones are `hangar vm create --from-snapshot ID`; a hibernated VM comes back with `hangar vm resume ID`.
// Snapshots and VMs are named by id, unique id prefix (or, for a VM, its name): src/cli/resolve.ts.
import { oneOf } from '../util/validate.js';
import { HangarError } from '../errors.js';
import type { SnapshotView } from '../snapshot/manifest.js';
import { clientFromEnv } from './client.js';
import { jsonOption, need, table, type CliIO, type Command } from './command.js';
import { withFlags } from './flags.js';
import { resolveSnapshot, resolveVm, SNAPSHOT_ARG, VM_ARG } from './resolve.js';
import { fmtAge, stateOf, type VmInfo } from './vm-view.js';

const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(0)}M`;

/** Bytes of the saved memory and device state (every file but the disk), and of the disk. */
function sizesOf(s: SnapshotView): { saved: number; disk: number } {
  const disk = s.sizes['disk.ext4'] ?? 0;
  return { saved: Object.entries(s.sizes).filter(([k]) => k !== 'disk.ext4').reduce((a, [, v]) => a + v, 0), disk };
}

export function snapshotTable(list: SnapshotView[], now = Date.now()): string {
  return table(['ID', 'SOURCE', 'IMAGE', 'VMM', 'CPU', 'MEM', 'GUEST IP', 'SAVED MEM', 'DISK', 'AGE'], list.map((s) => {
    const { saved, disk } = sizesOf(s);
    const source = s.source ? (s.source.kind === 'vm' ? `vm ${s.source.vmName || s.source.vmId}` : 'image') : '-';
    return [s.id, source, s.image, `${s.vmm} ${s.vmmVersion}`, s.vcpus, `${s.memMiB}M`, s.guest.ip, mib(saved), mib(disk), fmtAge(s.createdAt, now)];
  }));
}

/** `snapshot show`: one field per line. */
export function snapshotDetails(s: SnapshotView): string {
  const { saved, disk } = sizesOf(s);
  const rows: [string, string][] = [
    ['id', s.id],
    ['source', s.source ? (s.source.kind === 'vm' ? `VM ${s.source.vmId} (${s.source.vmName})` : `a VM booted from its image (${s.source.vmId})`) : '-'],
    ['image', `${s.image} (${s.profile})`],
    ['vmm', `${s.vmm} ${s.vmmVersion}`],
    ['vCPUs', String(s.vcpus)],
    ['memory', `${s.memMiB} MiB`],
    ['guest IP', s.guest.ip],
    ['guest MAC', s.guest.mac],
    ['saved state', `${mib(saved)} (memory and devices)`],
    ['disk', mib(disk)],
    ['files', Object.entries(s.sizes).map(([k, v]) => `${k} ${mib(v)}`).join(', ')],
    ['created', `${s.createdAt} (${fmtAge(s.createdAt)} ago)`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length)) + 1;
  return rows.map(([k, v]) => `${`${k}:`.padEnd(w)} ${v}\n`).join('');
}

function print(io: CliIO, asJson: boolean, value: unknown, text: string): void {
  io.out(asJson ? JSON.stringify(value) + '\n' : text);
}

export const commands: Command[] = [
  {
    path: ['snapshot', 'create'],
    summary: 'Take a golden snapshot: of a ready VM (--vm), or of a VM booted from an image for it (--image)',
    usage: '(--vm ID | --image REF) [--json]',
    details: "Clones start from it in about a second: hangar vm create --from-snapshot ID. The VM is named by id, id prefix or name.",
    options: {
      vm: { type: 'string', arg: 'ID', description: 'snapshot this ready VM (id, unique id prefix or name)' },
      image: { type: 'string', arg: 'REF', description: 'boot a VM from this image (id, prefix or profile) just for the snapshot' },
      ...jsonOption,
    },
    examples: ['hangar snapshot create --vm alice', 'hangar snapshot create --image desktop --json'],
    run: async ({ values }, io) => {
      const vm = typeof values.vm === 'string' ? values.vm : undefined;
      const image = typeof values.image === 'string' ? values.image : undefined;
      if ((vm === undefined) === (image === undefined)) {
        throw new HangarError('INVALID_ARGUMENT', 'give exactly one of --vm ID or --image REF', { field: vm ? 'image' : 'vm', hint: "see 'hangar snapshot create --help'" });
      }
      const api = clientFromEnv(io.env);
      const body = vm !== undefined ? { vm: (await resolveVm(api, vm)).id } : { image };
      if (!values.json) io.err(image ? `booting ${image} for the snapshot…\n` : `snapshotting ${body.vm}…\n`);
      const s = await withFlags({ '--vm': vm, '--image': image }, () => api.request<SnapshotView>('POST', '/v1/snapshots', body));
      print(io, values.json === true, s, snapshotTable([s]) + `\nclone it: hangar vm create --from-snapshot ${s.id}\n`);
      return 0;
    },
  },
  {
    path: ['snapshot', 'ls'], summary: 'List golden snapshots', usage: '[--json]', options: jsonOption,
    examples: ['hangar snapshot ls', 'hangar snapshot ls --json'],
    run: async ({ values }, io) => {
      const { snapshots } = await clientFromEnv(io.env).request<{ snapshots: SnapshotView[] }>('GET', '/v1/snapshots');
      print(io, values.json === true, snapshots, snapshots.length ? snapshotTable(snapshots) : 'no snapshots (take one with: hangar snapshot create --vm ID)\n');
      return 0;
    },
  },
  {
    path: ['snapshot', 'show'], summary: 'Show a golden snapshot, one field per line', usage: 'ID [--json]', args: [SNAPSHOT_ARG], options: jsonOption,
    examples: ['hangar snapshot show snap-0123'],
    run: async ({ values, positionals }, io) => {
      const s = await resolveSnapshot(clientFromEnv(io.env), need(positionals, 'ID'));
      print(io, values.json === true, s, snapshotDetails(s));
      return 0;
    },
  },
  {
    path: ['snapshot', 'rm'],
    summary: 'Delete a golden snapshot; refused (SNAPSHOT_IN_USE, naming them) while clones depend on it, unless --force says what becomes of them',
    usage: 'ID [--force convert|destroy] [--json]', args: [SNAPSHOT_ARG],
    options: {
      force: { type: 'string', arg: 'convert|destroy', description: 'convert: give each dependent clone its own copy of what it needs first; destroy: destroy them' },
      ...jsonOption,
    },
    examples: ['hangar snapshot rm snap-0123', 'hangar snapshot rm snap-0123 --force convert'],
    run: async ({ values, positionals }, io) => {
      const api = clientFromEnv(io.env);
      const force = values.force === undefined ? undefined : oneOf(values.force, 'force', ['convert', 'destroy'] as const);
      const { id } = await resolveSnapshot(api, need(positionals, 'ID'));
      await api.request('DELETE', `/v1/snapshots/${encodeURIComponent(id)}${force ? `?force=${force}` : ''}`);
      print(io, values.json === true, { id, deleted: true }, `deleted ${id}\n`);
      return 0;
    },
  },
  {
    path: ['vm', 'hibernate'], summary: "Save a VM's memory to disk and stop it ('vm resume' or 'vm start' restores it)", usage: 'ID [--json]', args: [VM_ARG], options: jsonOption,
    examples: ['hangar vm hibernate alice', 'hangar vm resume alice'],
    run: async ({ values, positionals }, io) => {
      const api = clientFromEnv(io.env);
      const vm = await resolveVm(api, need(positionals, 'ID'));
      const v = await api.request<VmInfo>('POST', `/v1/vms/${encodeURIComponent(vm.id)}/hibernate`);
      print(io, values.json === true, v, `${v.id} ${stateOf(v)}\n`);
      return 0;
    },
  },
];
