// `hangar volume …`: named persistent disks that outlive VMs (the controller's /v1/volumes). A volume is named by its
// id (vol-0123abcd) or its name; it is mounted in a VM at create (`hangar vm create --volume NAME:PATH`, through the
// API's `volumes`) or attached to a running one (`hangar volume attach`).
import { HangarError } from '../errors.js';
import { clientFromEnv } from './client.js';
import { jsonOption, need, table, type CliIO, type Command } from './command.js';
import { resolveVm, VM_ARG } from './resolve.js';
import { fmtAge } from './vm-view.js';
import type { VolumeView } from '../volume/service.js';

/** The API's volume view (GET /v1/volumes/:name). */
export type VolumeInfo = VolumeView;

const VOLUME_ARG = { name: 'NAME', description: 'the volume: its name or id' };
const enc = encodeURIComponent;
const used = (v: VolumeInfo): string => (v.usedBytes === null ? '-' : `${(v.usedBytes / 1024 / 1024).toFixed(1)}M`);
const where = (v: VolumeInfo): string => v.attachments.map((a) => `${a.vm}:${a.path}${a.readOnly ? ' (ro)' : ''}`).join(', ') || '-';

export function volumeTable(list: VolumeInfo[], now = Date.now()): string {
  return table(['ID', 'NAME', 'SIZE', 'USED', 'ATTACHED', 'AGE'], list.map((v) => [v.id, v.name, `${v.sizeMiB}M`, used(v), where(v), fmtAge(v.createdAt, now)]));
}

export function volumeDetails(v: VolumeInfo): string {
  const rows: [string, string][] = [
    ['id', v.id], ['name', v.name], ['tenant', v.tenant], ['size', `${v.sizeMiB} MiB`], ['used', used(v)],
    ['source', v.source ?? '-'], ['attached', where(v)], ['created', v.createdAt],
  ];
  const w = Math.max(...rows.map(([k]) => k.length)) + 1;
  return rows.map(([k, val]) => `${`${k}:`.padEnd(w)} ${val}\n`).join('');
}

/** A size given as MiB, or with a unit: 512M, 2G. */
export function parseSize(value: unknown): number {
  const m = typeof value === 'string' ? /^(\d+)([MG]i?B?)?$/i.exec(value.trim()) : null;
  if (!m) throw new HangarError('INVALID_ARGUMENT', `--size must be MiB or a size like 512M or 2G (got ${JSON.stringify(value)})`, { field: 'size', reason: 'format' });
  return Number(m[1]) * (m[2]?.toUpperCase().startsWith('G') ? 1024 : 1);
}

function print(io: CliIO, asJson: boolean, value: unknown, text: string): void {
  io.out(asJson ? JSON.stringify(value) + '\n' : text);
}

const sizeOption = { size: { type: 'string', arg: 'SIZE', description: 'the size limit: MiB, or 512M, 2G (the file is sparse)' } } as const;

export const commands: Command[] = [
  {
    path: ['volume', 'create'], summary: 'Create a volume: a sparse ext4 disk that outlives VMs', usage: 'NAME --size SIZE [--json]', args: [VOLUME_ARG],
    options: { ...sizeOption, ...jsonOption },
    examples: ['hangar volume create profile --size 2G', 'hangar vm create --volume profile:/home/hangar/.config/chromium'],
    run: async ({ values, positionals }, io) => {
      const v = await clientFromEnv(io.env).request<VolumeInfo>('POST', '/v1/volumes', { name: need(positionals, 'NAME'), sizeMiB: parseSize(values.size ?? '') });
      print(io, values.json === true, v, volumeTable([v]));
      return 0;
    },
  },
  {
    path: ['volume', 'ls'], summary: 'List volumes and where they are attached', usage: '[--json]', options: jsonOption, examples: ['hangar volume ls'],
    run: async ({ values }, io) => {
      const { volumes } = await clientFromEnv(io.env).request<{ volumes: VolumeInfo[] }>('GET', '/v1/volumes');
      print(io, values.json === true, volumes, volumes.length ? volumeTable(volumes) : 'no volumes (make one with: hangar volume create NAME --size 1G)\n');
      return 0;
    },
  },
  {
    path: ['volume', 'show'], summary: 'Show a volume, one field per line', usage: 'NAME [--json]', args: [VOLUME_ARG], options: jsonOption, examples: ['hangar volume show profile'],
    run: async ({ values, positionals }, io) => {
      const v = await clientFromEnv(io.env).request<VolumeInfo>('GET', `/v1/volumes/${enc(need(positionals, 'NAME'))}`);
      print(io, values.json === true, v, volumeDetails(v));
      return 0;
    },
  },
  {
    path: ['volume', 'resize'], summary: 'Grow a volume (online when it is attached to a ready VM)', usage: 'NAME --size SIZE [--json]', args: [VOLUME_ARG],
    options: { ...sizeOption, ...jsonOption }, examples: ['hangar volume resize profile --size 4G'],
    run: async ({ values, positionals }, io) => {
      const v = await clientFromEnv(io.env).request<VolumeInfo>('POST', `/v1/volumes/${enc(need(positionals, 'NAME'))}/resize`, { sizeMiB: parseSize(values.size ?? '') });
      print(io, values.json === true, v, volumeTable([v]));
      return 0;
    },
  },
  {
    path: ['volume', 'snapshot'], summary: 'Copy a volume under a new name (a reflink where the filesystem has them)', usage: 'NAME --name NEW [--json]', args: [VOLUME_ARG],
    options: { name: { type: 'string', arg: 'NEW', description: 'the copy\'s name' }, ...jsonOption }, examples: ['hangar volume snapshot profile --name profile-monday'],
    run: async ({ values, positionals }, io) => {
      const v = await clientFromEnv(io.env).request<VolumeInfo>('POST', `/v1/volumes/${enc(need(positionals, 'NAME'))}/snapshot`, { name: values.name });
      print(io, values.json === true, v, volumeTable([v]));
      return 0;
    },
  },
  {
    path: ['volume', 'rm'], summary: 'Remove a volume and its data (refused while attached)', usage: 'NAME [--json]', args: [VOLUME_ARG], options: jsonOption, examples: ['hangar volume rm scratch'],
    run: async ({ values, positionals }, io) => {
      const name = need(positionals, 'NAME');
      await clientFromEnv(io.env).request('DELETE', `/v1/volumes/${enc(name)}`);
      print(io, values.json === true, { name, deleted: true }, `removed ${name}\n`);
      return 0;
    },
  },
  {
    path: ['volume', 'attach'], summary: 'Attach a volume to a running VM without a reboot, mounted at PATH', usage: 'NAME ID --path PATH [--read-only] [--json]', args: [VOLUME_ARG, VM_ARG],
    options: { path: { type: 'string', arg: 'PATH', description: 'the mount point in the guest' }, 'read-only': { type: 'boolean', description: 'mount it read-only' }, ...jsonOption },
    examples: ['hangar volume attach data alice --path /home/hangar/data'],
    run: async ({ values, positionals }, io) => {
      const api = clientFromEnv(io.env);
      const vm = await resolveVm(api, positionals[1] ?? need([], 'ID'));
      const a = await api.request<{ slot: number; path: string }>('POST', `/v1/vms/${enc(vm.id)}/volumes`, { name: need(positionals, 'NAME'), path: values.path, ...(values['read-only'] ? { readOnly: true } : {}) });
      print(io, values.json === true, a, `mounted at ${a.path} in ${vm.id}\n`);
      return 0;
    },
  },
  {
    path: ['volume', 'detach'], summary: 'Unmount a volume and detach it from a VM', usage: 'NAME ID [--json]', args: [VOLUME_ARG, VM_ARG], options: jsonOption,
    examples: ['hangar volume detach data alice'],
    run: async ({ values, positionals }, io) => {
      const api = clientFromEnv(io.env);
      const name = need(positionals, 'NAME');
      const vm = await resolveVm(api, positionals[1] ?? need([], 'ID'));
      await api.request('DELETE', `/v1/vms/${enc(vm.id)}/volumes/${enc(name)}`);
      print(io, values.json === true, { name, vm: vm.id, detached: true }, `detached ${name} from ${vm.id}\n`);
      return 0;
    },
  },
];
