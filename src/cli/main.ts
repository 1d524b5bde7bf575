// `hangar` entry point: finds the command by its path (did-you-mean when there is none), prints help for hangar,
// a group or a command, parses the command's options strictly, and maps errors to exit codes (src/errors.ts).
// Bare `hangar` prints the help on stderr and exits 2 (no command given); every help asked for is stdout, exit 0.
import { exitCodeOf, HangarError, toHangarError } from '../errors.js';
import { didYouMean, ownWords, parseArgv } from './args.js';
import type { CliIO, Command } from './command.js';
import { commandHelp, groupHelp, GROUPS, topHelp, version } from './help.js';
import { commands as kernelCommands } from './kernel.js';
import { commands as imageCommands } from './image.js';
import { commands as vmCommands } from './vm.js';
import { commands as networkCommands } from './network.js';
import { commands as computerCommands } from './computer.js';
import { commands as agentCommands } from './agent.js';
import { commands as cpCommands } from './cp.js';
import { commands as controllerCommands } from './controller.js';
import { commands as doctorCommands } from './doctor.js';
import { commands as snapshotCommands } from './snapshot.js';
import { commands as volumeCommands } from './volume.js';
import { commands as poolCommands } from './pool.js';
import { commands as eventsCommands } from './events.js';
import { commands as tenancyCommands } from './tenancy.js';

export const COMMANDS: Command[] = [...controllerCommands, ...vmCommands, ...networkCommands, ...agentCommands, ...cpCommands, ...computerCommands, ...snapshotCommands, ...volumeCommands, ...poolCommands, ...imageCommands, ...kernelCommands, ...doctorCommands, ...eventsCommands, ...tenancyCommands];

const HELP = new Set(['--help', '-h']);
const groups = (): string[] => [...new Set(COMMANDS.filter((c) => c.path.length > 1).map((c) => c.path[0]!))];
const topWords = (): string[] => [...new Set(COMMANDS.map((c) => c.path[0]!)), 'help'];

function unknown(words: string[]): HangarError {
  const [first = '', second] = words;
  if (groups().includes(first) && second !== undefined) {
    const subs = COMMANDS.filter((c) => c.path[0] === first).map((c) => c.path.slice(1).join(' '));
    return new HangarError('INVALID_ARGUMENT', `unknown command 'hangar ${first} ${second}'${didYouMean(second, subs, (s) => `'hangar ${first} ${s}'`)}`, {
      command: `${first} ${second}`, hint: `'hangar ${first} --help' lists the ${first} commands`,
    });
  }
  const what = first.startsWith('-') ? 'option' : 'command';
  return new HangarError('INVALID_ARGUMENT', `unknown ${what} '${first}'${didYouMean(first, [...topWords(), '--help', '--version'], (s) => `'hangar ${s}'`)}`, {
    command: first, hint: "'hangar --help' lists the commands",
  });
}

/** The help `words` ask for (after `hangar help`, or a group alone), or the unknown-command error. */
function helpFor(words: string[]): string {
  if (words.length === 0) return topHelp(COMMANDS);
  const cmd = COMMANDS.find((c) => c.path.length === words.length && c.path.every((p, i) => p === words[i]));
  if (cmd) return commandHelp(cmd);
  if (words.length === 1 && GROUPS[words[0]!] !== undefined) return groupHelp(words[0]!, COMMANDS);
  throw unknown(words);
}

function report(e: unknown, json: boolean, io: CliIO): number {
  const err = toHangarError(e, 'INTERNAL');
  if (json) io.out(JSON.stringify({ error: err.toJSON() }) + '\n');
  else {
    io.err(`hangar: ${err.code}: ${err.message}\n`);
    if (typeof err.details.hint === 'string') io.err(`  ${err.details.hint}\n`);
  }
  return exitCodeOf(err.code);
}

export async function main(argv: string[], io: CliIO = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }): Promise<number> {
  const dashdash = argv.indexOf('--');
  const json = (dashdash < 0 ? argv : argv.slice(0, dashdash)).includes('--json');
  try {
    if (argv.length === 0) {
      io.err(topHelp(COMMANDS));
      return 2;
    }
    const [first, second] = argv as [string, ...string[]];
    if (first === '--version' || first === '-V') {
      io.out(json ? JSON.stringify({ version: version() }) + '\n' : `hangar ${version()}\n`);
      return 0;
    }
    if (HELP.has(first) || first === 'help') {
      io.out(helpFor(argv.slice(1).filter((a) => !HELP.has(a))));
      return 0;
    }
    // A group alone, or with help: the group's help (`hangar vm`, `hangar vm --help`, `hangar vm help [COMMAND]`).
    if (GROUPS[first] !== undefined && (second === undefined || HELP.has(second) || second === 'help')) {
      io.out(helpFor([first, ...argv.slice(2).filter((a) => !HELP.has(a))]));
      return 0;
    }
    // Longest matching command path wins.
    const cmd = [...COMMANDS].sort((a, b) => b.path.length - a.path.length).find((c) => c.path.every((p, i) => argv[i] === p));
    if (!cmd) throw unknown(argv.slice(0, 2));
    const rest = argv.slice(cmd.path.length);
    const options = ownWords(rest, cmd.options, cmd.args ?? []);
    if (options.some((a) => HELP.has(a))) {
      io.out(commandHelp(cmd));
      return 0;
    }
    const parsed = parseArgv(rest, cmd.options, cmd.args ?? [], `hangar ${cmd.path.join(' ')}`);
    return await cmd.run(parsed, io);
  } catch (e) {
    return report(e, json, io);
  }
}
