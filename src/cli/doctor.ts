// `hangar doctor [--vm ID]`: the controller's host, image and VM checks (GET /v1/doctor). `hangar doctor --console FILE`:
// classifies a saved serial console log offline. Exit 0 no error finding, 1 some, 2 unreadable.
import { readFile, stat } from 'node:fs/promises';
import { HangarError } from '../errors.js';
import { classifyConsole } from '../doctor/console.js';
import type { DoctorReport } from '../doctor/model.js';
import { consoleReportJson, renderConsoleReport, renderDoctorReport, terminalWidth } from '../doctor/report.js';
import { parseIpv4 } from '../net/ipv4.js';
import { validPath } from '../util/validate.js';
import { clientFromEnv } from './client.js';
import { jsonOption, type Command } from './command.js';
import { resolveVm } from './resolve.js';

/** Console logs of a reboot loop grow, but a log larger than this is not a console log. */
export const MAX_CONSOLE_BYTES = 64 * 1024 * 1024;

/** Reads a console log as text; anything that stops that is CONSOLE_UNREADABLE. */
export async function readConsoleLog(path: string): Promise<string> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new HangarError('CONSOLE_UNREADABLE', `${path} is not a regular file`, { path });
    if (st.size > MAX_CONSOLE_BYTES) {
      throw new HangarError('CONSOLE_UNREADABLE', `${path} is ${st.size} bytes, more than ${MAX_CONSOLE_BYTES}: not a console log`, { path, size: st.size });
    }
    return (await readFile(path)).toString('utf8');
  } catch (e) {
    if (e instanceof HangarError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new HangarError('CONSOLE_UNREADABLE', `cannot read console log ${path}: ${code ?? (e as Error).message}`, { path, errno: code }, { cause: e });
  }
}

export const commands: Command[] = [
  {
    path: ['doctor'],
    summary: 'Name the cause of a VM failure from evidence: host, image and VM checks through the controller (--console: a saved serial console log, offline)',
    usage: '[--vm ID] [--json] | --console FILE [--expect-ip IP] [--json]',
    options: {
      vm: { type: 'string', arg: 'ID', description: 'also check this VM (id, unique id prefix or name)' },
      console: { type: 'string', arg: 'FILE', description: 'classify a saved serial console log instead, offline (no controller needed)' },
      'expect-ip': { type: 'string', arg: 'IP', description: 'with --console: the address the guest should have had' },
      ...jsonOption,
    },
    details: 'Exit 0 when no check finds an error, 1 when one does (the most likely cause first), 2 for an unreadable log.',
    examples: ['hangar doctor', 'hangar doctor --vm alice --json', 'hangar doctor --console saved-console.log --expect-ip 10.242.0.2'],
    run: async (args, io) => {
      const file = args.values.console;
      const expectIp = args.values['expect-ip'];
      const vm = args.values.vm;
      if (file === undefined) {
        if (expectIp !== undefined) throw new HangarError('INVALID_ARGUMENT', '--expect-ip goes with --console FILE (with --vm the controller knows the address)', { field: 'expect-ip' });
        if (vm !== undefined && (typeof vm !== 'string' || vm === '')) throw new HangarError('INVALID_ARGUMENT', '--vm needs a VM id or name', { field: 'vm' });
        const api = clientFromEnv(io.env);
        const id = typeof vm === 'string' ? (await resolveVm(api, vm)).id : null;
        const report = await api.request<DoctorReport>('GET', `/v1/doctor${id ? `?vm=${encodeURIComponent(id)}` : ''}`);
        io.out(args.values.json ? JSON.stringify(report) + '\n' : renderDoctorReport(report, terminalWidth()));
        return report.ok ? 0 : 1;
      }
      if (typeof file !== 'string') throw new HangarError('INVALID_ARGUMENT', 'hangar doctor --console needs a FILE', { field: 'console' });
      if (vm !== undefined) throw new HangarError('INVALID_ARGUMENT', '--console reads a saved log offline; it does not take --vm', { field: 'vm' });
      if (expectIp !== undefined && (typeof expectIp !== 'string' || parseIpv4(expectIp) === null)) {
        throw new HangarError('INVALID_ARGUMENT', `--expect-ip must be an IPv4 address (got ${JSON.stringify(expectIp)})`, { field: 'expect-ip' });
      }
      const text = await readConsoleLog(validPath(file, 'console'));
      const report = classifyConsole(text, typeof expectIp === 'string' ? { expectIp } : {});
      io.out(args.values.json ? JSON.stringify(consoleReportJson(report)) + '\n' : renderConsoleReport(report, terminalWidth()));
      return report.ok ? 0 : 1;
    },
  },
];
