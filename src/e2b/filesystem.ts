// envd's connect-rpc `filesystem` service over the guest agent: Stat, MakeDir (AlreadyExists when it exists), Move,
// ListDir (depth), Remove (recursive), WatchDir (streamed: start, then events named relative to the directory) and
// the polled watchers (CreateWatcher / GetWatcherEvents / RemoveWatcher: events kept in the controller, at most
// MAX_KEPT per watcher, the oldest dropped).
import { randomUUID } from 'node:crypto';
import { posix } from 'node:path';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { AgentSession, FileStat, WatchEvent, Watcher } from '../agent/port.js';
import { GUEST_USER } from '../image/plan.js';
import { callOf, rpc, toConnectError, type SandboxCall } from './context.js';
import { EventType, FileType, type Filesystem, type EntryInfoSchema, type FilesystemEventSchema } from './gen/filesystem/filesystem_pb.js';

type EntryInit = MessageInitShape<typeof EntryInfoSchema>;
type EventInit = MessageInitShape<typeof FilesystemEventSchema>;

const MAX_KEPT = 1024;

/** rwxr-xr-x for a mode, with the type letter. Pure. */
export function permissionString(type: FileStat['type'], mode: number): string {
  const t = type === 'dir' ? 'd' : type === 'symlink' ? 'L' : '-';
  const bits = 'rwxrwxrwx';
  return t + [...bits].map((c, i) => ((mode >> (8 - i)) & 1 ? c : '-')).join('');
}

const ownerName = (id: number): string => (id === 0 ? 'root' : id === GUEST_USER.uid ? 'user' : String(id));

/** A guest stat as envd's EntryInfo. Pure. */
export function entryOf(path: string, s: FileStat): EntryInit {
  const type = s.type === 'dir' ? FileType.DIRECTORY : s.type === 'symlink' ? FileType.SYMLINK : s.type === 'file' ? FileType.FILE : FileType.UNSPECIFIED;
  return {
    name: posix.basename(path) || '/', type, path, size: BigInt(s.size), mode: s.mode & 0o7777, permissions: permissionString(s.type, s.mode),
    owner: ownerName(s.uid), group: ownerName(s.gid), modifiedTime: timestampFromMs(Math.floor(s.mtimeMs)),
    ...(s.target !== undefined ? { symlinkTarget: s.target } : {}),
  };
}

const EVENT_TYPES: Record<WatchEvent['type'], EventType> = {
  create: EventType.CREATE, write: EventType.WRITE, remove: EventType.REMOVE, rename: EventType.RENAME, chmod: EventType.CHMOD,
};

/** A guest watch event as envd's, named relative to the watched directory. Pure. */
export function eventOf(dir: string, e: WatchEvent): EventInit {
  const rel = posix.relative(dir, e.path);
  return { name: rel && !rel.startsWith('..') ? rel : e.path, type: EVENT_TYPES[e.type] };
}

/** Makes a directory (and its parents) owned by the call's user: as that user through the agent, unless root. */
export async function makeDirs(s: AgentSession, path: string, user: string | undefined): Promise<void> {
  if (user === 'root') return s.mkdir(path, { parents: true });
  const h = await s.exec({ argv: ['mkdir', '-p', '--', path], ...(user ? { user } : {}) });
  h.stdout.resume();
  const err: Buffer[] = [];
  h.stderr.on('data', (b: Buffer) => err.push(b));
  const st = await h.exit;
  if (st.code !== 0) throw new ConnectError(`mkdir ${path}: ${Buffer.concat(err).toString().trim() || 'failed'}`, /denied/i.test(Buffer.concat(err).toString()) ? Code.PermissionDenied : Code.InvalidArgument);
}

interface PolledWatcher { vmId: string; watcher: Watcher; events: EventInit[] }

export function filesystemService(): ServiceImpl<typeof Filesystem> {
  const watchers = new Map<string, PolledWatcher>();
  const statEntry = async (call: SandboxCall, path: string): Promise<EntryInit> => entryOf(path, await (await call.session()).stat(path));
  const polled = (call: SandboxCall, id: string): PolledWatcher => {
    const w = watchers.get(id);
    if (!w || w.vmId !== call.vmId) throw new ConnectError(`watcher ${id} not found`, Code.NotFound);
    return w;
  };
  return {
    stat: (req, ctx) => rpc(async () => ({ entry: await statEntry(callOf(ctx), req.path) })),
    makeDir: (req, ctx) => rpc(async () => {
      const call = callOf(ctx);
      const s = await call.session();
      const exists = await s.stat(req.path).then(() => true, () => false);
      if (exists) throw new ConnectError(`${req.path} already exists`, Code.AlreadyExists);
      await makeDirs(s, req.path, call.user);
      return { entry: await statEntry(call, req.path) };
    }),
    move: (req, ctx) => rpc(async () => {
      const call = callOf(ctx);
      await (await call.session()).mv(req.source, req.destination);
      return { entry: await statEntry(call, req.destination) };
    }),
    listDir: (req, ctx) => rpc(async () => {
      const call = callOf(ctx);
      const s = await call.session();
      const st = await s.stat(req.path);
      if (st.type !== 'dir') throw new ConnectError(`${req.path} is not a directory`, Code.InvalidArgument);
      const entries = await s.list(req.path, { depth: Math.max(1, Math.min(req.depth || 1, 16)) });
      return { entries: entries.map((e) => entryOf(e.path, e)) };
    }),
    remove: (req, ctx) => rpc(async () => {
      await (await callOf(ctx).session()).rm(req.path, { recursive: true });
      return {};
    }),
    async *watchDir(req, ctx) {
      const call = callOf(ctx);
      let w: Watcher;
      try {
        w = await (await call.session()).watch(req.path, { recursive: req.recursive });
      } catch (e) {
        throw toConnectError(e);
      }
      const stop = (): void => w.close();
      ctx.signal.addEventListener('abort', stop, { once: true });
      try {
        yield { event: { case: 'start', value: {} } };
        for await (const e of w) yield { event: { case: 'filesystem', value: eventOf(req.path, e) } };
      } finally {
        ctx.signal.removeEventListener('abort', stop);
        w.close();
      }
    },
    createWatcher: (req, ctx) => rpc(async () => {
      const call = callOf(ctx);
      const watcher = await (await call.session()).watch(req.path, { recursive: req.recursive });
      const id = randomUUID();
      const pw: PolledWatcher = { vmId: call.vmId, watcher, events: [] };
      watchers.set(id, pw);
      void (async () => {
        try {
          for await (const e of watcher) {
            pw.events.push(eventOf(req.path, e));
            if (pw.events.length > MAX_KEPT) pw.events.shift();
          }
        } catch { /* the watcher ended with its session */ }
      })();
      return { watcherId: id };
    }),
    getWatcherEvents: (req, ctx) => rpc(async () => {
      const w = polled(callOf(ctx), req.watcherId);
      return { events: w.events.splice(0) };
    }),
    removeWatcher: (req, ctx) => rpc(async () => {
      const w = polled(callOf(ctx), req.watcherId);
      w.watcher.close();
      watchers.delete(req.watcherId);
      return {};
    }),
  };
}
