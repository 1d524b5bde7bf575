// `hangar` entry point: finds the command by its path, parses its options strictly, maps errors to exit codes.
import { parseArgs } from 'node:util';
import { exitCodeOf, toHangarError } from '../errors.js';
import type { CliIO, Command } from './command.js';
import { commands as kernelCommands } from './kernel.js';
import { commands as imageCommands } from './image.js';
import { commands as vmCommands } from './vm.js';
import { commands as controllerCommands } from './controller.js';
import { commands as doctorCommands } from './doctor.js';
import { commands as snapshotCommands } from './snapshot.js';

export const COMMANDS: Command[] = [...controllerCommands, ...vmCommands, ...imageCommands, ...kernelCommands, ...doctorCommands, ...snapshotCommands];

function help(io: CliIO): void {
  io.out('Usage: hangar <command> [options]\n\nCommands:\n');
  for (const c of COMMANDS) io.out(`  ${[...c.path, c.usage].join(' ').padEnd(60)} ${c.summary}\n`);
}

export async function main(argv: string[], io: CliIO = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    help(io);
    return argv.length === 0 ? 2 : 0;
  }
  // Longest matching command path wins.
  const cmd = [...COMMANDS].sort((a, b) => b.path.length - a.path.length).find((c) => c.path.every((p, i) => argv[i] === p));
  if (!cmd) {
    io.err(`hangar: unknown command '${argv.slice(0, 2).join(' ')}'. Run 'hangar --help'.\n`);
    return 2;
  }
  const rest = argv.slice(cmd.path.length);
  const json = rest.includes('--json');
  try {
    if (rest.includes('--help') || rest.includes('-h')) {
      io.out(`Usage: hangar ${cmd.path.join(' ')} ${cmd.usage}\n${cmd.summary}\n`);
      return 0;
    }
    const parsed = parseArgs({ args: rest, options: cmd.options, allowPositionals: true, strict: true });
    return await cmd.run({ values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals }, io);
  } catch (e) {
    const isParseError = e instanceof TypeError && 'code' in e && String((e as { code: unknown }).code).startsWith('ERR_PARSE_ARGS');
    const err = toHangarError(e, isParseError ? 'INVALID_ARGUMENT' : 'INTERNAL');
    if (json) io.out(JSON.stringify({ error: err.toJSON() }) + '\n');
    else io.err(`hangar: ${err.code}: ${err.message}\n`);
    return exitCodeOf(err.code);
  }
}
