// The help the CLI prints: for hangar itself, for each group of commands (vm, image, …) and for each command,
// always with a usage line, the options with one line each, and examples. Pure: rendered from the command
// declarations, so the help cannot drift from what the parser accepts.
import { readFileSync } from 'node:fs';
import type { Command, OptionSpec } from './command.js';

export interface Group {
  summary: string;
  details?: string;
  examples: string[];
}

export const GROUPS: Readonly<Record<string, Group>> = {
  vm: {
    summary: 'Create, inspect and control VMs',
    details: 'A VM is named by its id (vm-1a2b3c4d), a unique prefix of it (1a2b) or its name.',
    examples: ['hangar vm create --name alice', 'hangar vm ls', 'hangar vm open alice', 'hangar vm rm alice'],
  },
  snapshot: {
    summary: 'Golden snapshots: clones of a booted VM that start in about a second',
    details: 'A snapshot is named by its id (snap-0123abcd) or a unique prefix of it.',
    examples: ['hangar snapshot create --vm alice', 'hangar vm create --from-snapshot snap-0123', 'hangar snapshot ls'],
  },
  volume: {
    summary: 'Volumes: named persistent disks that outlive VMs, mounted at a path in the guest',
    details: 'A volume is named by its name or id (vol-0123abcd). One VM writes to it at a time; a browser-profile volume mounted at /home/hangar/.config/chromium keeps Chromium\'s logins.',
    examples: ['hangar volume create data --size 1G', 'hangar vm create --volume data:/home/hangar/data', 'hangar volume attach data alice --path /data'],
  },
  pool: {
    summary: 'Warm pools: ready VMs of a template, claimed in milliseconds (POST /v1/vms {"pool": NAME})',
    details: 'A pool is named by its name. create and rm need an admin key.',
    examples: ['hangar pool create desk --size 3 --profile desktop', 'hangar pool ls', 'hangar pool rm desk'],
  },
  image: {
    summary: 'Build, list and remove guest images (kernel + Debian root filesystem)',
    examples: ['hangar image build', 'hangar image ls', 'hangar image prune --dry-run'],
  },
  tenant: {
    summary: 'Tenants and their quotas (VMs, vCPUs, memory, disk, viewers); admin key',
    details: "Every VM, snapshot and event belongs to a tenant; a tenant's keys see only its own. The token file's key is the default tenant's admin key.",
    examples: ['hangar tenant create acme --max-vms 3', 'hangar tenant ls', 'hangar tenant set acme --max-vms none'],
  },
  key: {
    summary: 'API keys of tenants, with scopes (admin, write, read, viewer) and optional expiry; admin key',
    details: 'A key is shown once, when it is created, and stored as its hash. Revoked and expired keys are refused at once.',
    examples: ['hangar key create --tenant acme --scope write --expires 30d', 'hangar key ls', 'hangar key rm key-0123abcd'],
  },
  kernel: {
    summary: 'Check guest kernels against the VMM they boot on',
    examples: ['hangar kernel lint /path/to/vmlinux --vmm firecracker'],
  },
};

/** Every environment variable the CLI (and the controller `hangar up` starts) reads. */
export const ENVIRONMENT: readonly [string, string][] = [
  ['HANGAR_URL', "the controller's URL (default: the one it recorded in HANGAR_STATE_DIR, else http://127.0.0.1:7070)"],
  ['HANGAR_TOKEN', "the API key (default: the controller's token file, HANGAR_STATE_DIR/token, mode 0600: the default tenant's admin key)"],
  ['HANGAR_QUIET', '1: no progress on stderr, as --quiet'],
  ['HANGAR_STATE_DIR', 'state: database, token, endpoint, config.json, VM run directories (default /var/lib/hangar)'],
  ['HANGAR_CONFIG', "the controller's config file (default HANGAR_STATE_DIR/config.json)"],
  ['HANGAR_CACHE_DIR', 'build cache and snapshots (default /var/cache/hangar)'],
  ['HANGAR_IMAGES_DIR', 'built images (default HANGAR_CACHE_DIR/images)'],
  ['HANGAR_ACCEL', 'kvm or tcg: force the accelerator of QEMU VMs (hangar up, hangar doctor)'],
  ['FIRECRACKER_BIN', 'the firecracker binary (default: firecracker on PATH)'],
  ['JAILER_BIN', "Firecracker's jailer binary (default: jailer on PATH)"],
];

export const EXIT_CODES: readonly [number, string][] = [
  [0, 'ok'],
  [1, 'a check failed (kernel lint, doctor findings) or a VM did not become ready'],
  [2, 'bad input: unknown command or option, invalid value, not found, ambiguous id prefix, conflict (name taken, wrong state), missing or wrong token'],
  [3, 'host problem: not root, missing tools or VMM, no accelerator, no disk space, host full'],
  [4, 'other error'],
  [5, 'the controller does not answer'],
];

/** The package's version, read from the package.json installed beside dist/ at run time. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

const columns = (rows: [string, string][], indent = 2): string => {
  const w = Math.max(...rows.map(([a]) => a.length));
  return rows.map(([a, b]) => `${' '.repeat(indent)}${a.padEnd(w)}  ${b}\n`).join('');
};

function optionRows(options: OptionSpec): [string, string][] {
  return [
    ...Object.entries(options).map(([name, o]): [string, string] => [`--${name}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}${o.short ? `, -${o.short}` : ''}`, o.description]),
    ['-h, --help', 'show this help'],
  ];
}

export function commandHelp(c: Command): string {
  let s = `Usage: hangar ${c.path.join(' ')}${c.usage ? ` ${c.usage}` : ''}\n\n${c.summary}.\n`;
  if (c.details) s += `\n${c.details}\n`;
  if (c.args?.length) s += `\nArguments:\n${columns(c.args.map((a) => [a.optional ? `[${a.name}]` : a.name, a.description]))}`;
  s += `\nOptions:\n${columns(optionRows(c.options))}`;
  s += `\nExamples:\n${c.examples.map((e) => `  ${e}\n`).join('')}`;
  return s;
}

export function groupHelp(name: string, commands: readonly Command[]): string {
  const g = GROUPS[name];
  const mine = commands.filter((c) => c.path[0] === name && c.path.length > 1);
  let s = `Usage: hangar ${name} <command> [options]\n\n${g?.summary ?? ''}.\n`;
  if (g?.details) s += `${g.details}\n`;
  s += `\nCommands:\n${columns(mine.map((c) => [c.path.slice(1).join(' '), c.summary]))}`;
  s += `\nExamples:\n${(g?.examples ?? mine.flatMap((c) => c.examples.slice(0, 1))).map((e) => `  ${e}\n`).join('')}`;
  s += `\nRun 'hangar ${name} COMMAND --help' (or 'hangar help ${name} COMMAND') for a command's options.\n`;
  return s;
}

export function topHelp(commands: readonly Command[]): string {
  const single = commands.filter((c) => c.path.length === 1);
  const groups = [...new Set(commands.filter((c) => c.path.length > 1).map((c) => c.path[0]!))];
  let s = 'Usage: hangar <command> [options]\n       hangar help [COMMAND]    hangar COMMAND --help\n\n'
    + 'Hangar runs disposable microVMs that serve desktops and browsers to a web browser.\n';
  s += `\nCommands:\n${columns([
    ...single.filter((c) => c.path[0] === 'up' || c.path[0] === 'down').map((c): [string, string] => [c.path[0]!, c.summary]),
    ...groups.map((g): [string, string] => [g, `${GROUPS[g]?.summary ?? ''} (${commands.filter((c) => c.path[0] === g && c.path.length > 1).map((c) => c.path.slice(1).join(' ')).join(', ')})`]),
    ...single.filter((c) => c.path[0] !== 'up' && c.path[0] !== 'down').map((c): [string, string] => [c.path[0]!, c.summary]),
    ['help', 'this help; hangar help COMMAND for a command or group'],
  ])}`;
  s += `\nOptions:\n${columns([['-h, --help', 'help (for a command: hangar COMMAND --help)'], ['-V, --version', 'print the version'], ['--json', 'machine-readable output on stdout, errors as {"error":{code,message,details}}']])}`;
  s += `\nEnvironment:\n${columns(ENVIRONMENT.map(([k, v]) => [k, v]))}`;
  s += `\nExit codes:\n${columns(EXIT_CODES.map(([k, v]) => [String(k), v]))}`;
  s += '\nExamples:\n  hangar up\n  hangar vm create --name alice\n  hangar vm open alice\n  hangar help vm create\n';
  return s;
}
