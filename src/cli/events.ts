// `hangar events`: follows the controller's lifecycle events (GET /v1/events, Server-Sent Events) and prints one
// line per event, or NDJSON with --json. --since picks what comes first: 'now' (default) only what happens from
// now on, 'all' everything the controller kept, N everything after event N. Ctrl-C or the stream's end: exit 0.
import type { EventRecord } from '../store/store.js';
import { HangarError } from '../errors.js';
import { clientFromEnv } from './client.js';
import { interruptible, jsonOption, type Command } from './command.js';
import { withFlags } from './flags.js';
import { resolveVm } from './resolve.js';

/** --since as the API's query value: null for 'now' (live only), 0 for 'all', N after event N. Pure. */
export function sinceQuery(value: string | undefined): number | null {
  if (value === undefined || value === 'now') return null;
  if (value === 'all') return 0;
  if (/^\d+$/.test(value)) return Number(value);
  throw new HangarError('INVALID_ARGUMENT', `--since must be an event number, 'all' or 'now' (got ${JSON.stringify(value)})`, { field: '--since', flag: '--since', hint: "see 'hangar events --help'" });
}

const compactValue = (v: unknown): string => (typeof v === 'string' && v !== '' && !/[\s"=]/.test(v) ? v : JSON.stringify(v));

/** key=value pairs of an event's data, on one line. Pure. */
export function compactData(data: unknown, max = 240): string {
  const text = data && typeof data === 'object' && !Array.isArray(data)
    ? Object.entries(data).map(([k, v]) => `${k}=${compactValue(v)}`).join(' ')
    : data === undefined ? '' : JSON.stringify(data);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** One line: time, event number, type, VM, data. Pure. */
export function formatEvent(e: Partial<EventRecord>): string {
  return [e.at ?? '-', String(e.seq ?? '-').padStart(5), (e.type ?? '?').padEnd(14), (e.vmId ?? '-').padEnd(11), compactData(e.data)].join('  ').trimEnd() + '\n';
}

export const commands: Command[] = [
  {
    path: ['events'],
    summary: "Follow the controller's lifecycle events (VM states, boots, failures) until Ctrl-C",
    usage: '[--since SEQ|all|now] [--vm ID] [--json]',
    details: 'One line per event: time, event number (SEQ), type, VM, data. --since all replays what the controller kept '
      + 'before following; --since SEQ resumes after the event numbered SEQ (e.g. the last one a script saw).',
    options: {
      since: { type: 'string', arg: 'SEQ|all|now', description: "where to start: 'now' (default) new events only, 'all' every kept event, SEQ after event SEQ" },
      vm: { type: 'string', arg: 'ID', description: "only this VM's events (id, unique id prefix or name)" },
      ...jsonOption,
    },
    examples: ['hangar events', 'hangar events --since all --vm alice', 'hangar events --since 120 --json'],
    run: async ({ values }, io) => {
      const since = sinceQuery(typeof values.since === 'string' ? values.since : undefined);
      const api = clientFromEnv(io.env);
      const vm = typeof values.vm === 'string' ? (await resolveVm(api, values.vm)).id : null;
      const q = new URLSearchParams();
      if (since !== null) q.set('since', String(since));
      if (vm) q.set('vm', vm);
      const stop = interruptible(io);
      try {
        await withFlags({ '--since': typeof values.since === 'string' ? values.since : undefined, '--vm': vm ?? undefined }, () => api.events(`/v1/events${q.size ? `?${q}` : ''}`, (ev) => {
          let rec: Partial<EventRecord>;
          try {
            rec = JSON.parse(ev.data) as Partial<EventRecord>;
          } catch {
            rec = { type: ev.event, data: { raw: ev.data } as Record<string, unknown> };
          }
          if (rec.seq === undefined && ev.id !== null && /^\d+$/.test(ev.id)) rec.seq = Number(ev.id);
          if (rec.type === undefined) rec.type = ev.event;
          io.out(values.json ? JSON.stringify(rec) + '\n' : formatEvent(rec));
        }, { signal: stop.signal }));
      } finally {
        stop.release();
      }
      return 0;
    },
  },
];
