// `hangar vm cp SRC DST`: files between this machine and VMs, or between two VMs, through the guest agents. A VM
// path is VM:/absolute/path (VM: an id, id prefix or name); anything else is a local path ('-' is stdin/stdout).
// Bytes are streamed (uploads as the request body, downloads as the answer, VM to VM by the controller's copy
// route) with progress on stderr unless --quiet; a directory as the destination gets the source's file name.
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadable } from 'node:stream/web';
import { HangarError, isHangarError } from '../errors.js';
import { clientFromEnv, type ApiClient } from './client.js';
import { jsonOption, quietFrom, type CliIO, type Command } from './command.js';
import { resolveVm } from './resolve.js';

export type CpSpec = { vm: string; path: string } | { local: string };

/** A cp argument: VM:/path, or a local path. A relative guest path is refused. Pure. */
export function parseCpSpec(arg: string): CpSpec {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*):(.*)$/.exec(arg);
  if (!m) return { local: arg };
  const path = m[2]!;
  if (!path.startsWith('/')) throw new HangarError('INVALID_ARGUMENT', `guest paths are absolute: write ${m[1]}:/${path || 'path'} (a local path with ':' is written ./${arg})`, { field: 'SRC', got: arg });
  return { vm: m[1]!, path };
}

/** `dst`, or `dst/name` when it names a directory (ends with '/' or is one). Pure. */
export const intoDir = (dst: string, isDir: boolean, name: string): string => (dst.endsWith('/') ? `${dst}${name}` : isDir ? `${dst.replace(/\/$/, '')}/${name}` : dst);

/** Progress on stderr: bytes so far of the total, and the rate, at most 4 times a second. */
export class CopyProgress {
  private readonly t0 = performance.now();
  private last = 0;
  bytes = 0;
  constructor(private readonly io: CliIO, private readonly quiet: boolean, private readonly total: number | null, private readonly label: string) {}
  add(n: number): void {
    this.bytes += n;
    const now = performance.now();
    if (!this.quiet && now - this.last >= 250) { this.last = now; this.io.err(`\r${this.line()}`); }
  }
  line(): string {
    const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
    const s = Math.max(0.001, (performance.now() - this.t0) / 1000);
    return `${this.label}  ${mib(this.bytes)}${this.total !== null ? `/${mib(this.total)}` : ''} MiB  ${mib(this.bytes / s)} MiB/s`;
  }
  done(): void { if (!this.quiet) this.io.err(`\r${this.line()}\n`); }
  counter(): Transform {
    return new Transform({ transform: (chunk: Buffer, _e, cb) => { this.add(chunk.length); cb(null, chunk); } });
  }
}

const enc = encodeURIComponent;


async function guestIsDir(api: ApiClient, vmId: string, path: string): Promise<boolean> {
  try {
    return (await api.request<{ type: string }>('GET', `/v1/vms/${enc(vmId)}/files/stat?path=${enc(path)}`)).type === 'dir';
  } catch (e) {
    if (isHangarError(e, 'GUEST_PATH_NOT_FOUND')) return false;
    throw e;
  }
}

const localIsDir = (p: string): boolean => { try { return statSync(p).isDirectory(); } catch { return false; } };

export const commands: Command[] = [{
  path: ['vm', 'cp'], summary: 'Copy files between this machine and VMs, or from one VM to another, streamed',
  usage: 'SRC DST [--quiet] [--json]',
  args: [{ name: 'SRC', description: 'VM:/path or a local path (- for stdin)' }, { name: 'DST', description: 'VM:/path or a local path (- for stdout)' }],
  details: 'VM is an id, unique id prefix or name; guest paths are absolute. VM:path to VM:path copies inside the controller '
    + 'in one call (the bytes never come here). Progress goes to stderr (not with --quiet, --json or HANGAR_QUIET=1).',
  options: { quiet: { type: 'boolean', description: 'no progress on stderr' }, ...jsonOption },
  examples: ['hangar vm cp ./notes.txt alice:/home/hangar/notes.txt', 'hangar vm cp alice:/var/log/syslog .', 'hangar vm cp browser:/home/hangar/.config/token.json cli:/home/hangar/.config/'],
  run: async ({ values, positionals }, io) => {
    const src = parseCpSpec(positionals[0]!);
    const dst = parseCpSpec(positionals[1]!);
    const quiet = quietFrom(values, io) || (!('vm' in src) && (positionals[1] === '-'));
    const api = clientFromEnv(io.env);
    let result: Record<string, unknown>;
    if ('vm' in src && 'vm' in dst) {
      const [from, to] = [await resolveVm(api, src.vm), await resolveVm(api, dst.vm)];
      const target = intoDir(dst.path, await guestIsDir(api, to.id, dst.path), basename(src.path));
      const t0 = performance.now();
      result = await api.request('POST', `/v1/vms/${enc(from.id)}/files/copy`, { toVm: to.id, from: src.path, to: target });
      if (!quiet) io.err(`copied ${result.size as number} bytes ${from.name || from.id}:${src.path} → ${to.name || to.id}:${target} in ${Math.round(performance.now() - t0)} ms\n`);
    } else if ('vm' in dst) {
      const local = (src as { local: string }).local;
      const vm = await resolveVm(api, dst.vm);
      const st = local === '-' ? null : statSync(local);
      if (st?.isDirectory()) throw new HangarError('INVALID_ARGUMENT', `${local} is a directory (hangar vm cp copies files)`, { field: 'SRC' });
      const target = intoDir(dst.path, await guestIsDir(api, vm.id, dst.path), basename(local === '-' ? 'stdin' : local));
      const progress = new CopyProgress(io, quiet, st ? st.size : null, `→ ${vm.name || vm.id}:${target}`);
      const input = local === '-' ? (io.stdin ?? process.stdin) : createReadStream(local, { highWaterMark: 1024 * 1024 });
      const mode = st ? `&mode=0${(st.mode & 0o777).toString(8)}` : '';
      const answer = await api.upload<object>(`/v1/vms/${enc(vm.id)}/files?path=${enc(target)}${mode}`, (input as Readable).pipe(progress.counter()), { 'content-type': 'application/octet-stream' });
      result = { vm: vm.id, ...answer };
      progress.done();
    } else if ('vm' in src) {
      const local = (dst as { local: string }).local;
      const vm = await resolveVm(api, src.vm);
      const res = await api.raw('GET', `/v1/vms/${enc(vm.id)}/files?path=${enc(src.path)}`);
      const size = Number(res.headers.get('content-length') ?? NaN);
      const target = local === '-' ? '-' : intoDir(local, localIsDir(local), basename(src.path));
      const progress = new CopyProgress(io, quiet, Number.isFinite(size) ? size : null, `← ${vm.name || vm.id}:${src.path}`);
      const out = target === '-' ? (io.stdout ?? process.stdout) : createWriteStream(target);
      await pipeline(Readable.fromWeb(res.body as WebReadable), progress.counter(), out);
      progress.done();
      result = { vm: vm.id, path: src.path, to: target === '-' ? null : join(target), size: progress.bytes };
    } else {
      throw new HangarError('INVALID_ARGUMENT', 'one of SRC and DST must be a VM path (VM:/path); for local copies use cp', { field: 'SRC' });
    }
    if (values.json) io.out(JSON.stringify(result) + '\n');
    return 0;
  },
}];
