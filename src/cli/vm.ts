// `hangar vm …`: the controller's API from the command line. --json everywhere; exit codes scripts can rely on
// (0 ok, 1 the VM did not become ready, others from the error registry). A VM is named by its id, a unique id
// prefix or its name (src/cli/resolve.ts).
import { PROFILES } from '../image/plan.js';
import { clientFromEnv, type ApiClient } from './client.js';
import { atLeast, interruptible, jsonOption, need, quietFrom, type CliIO, type Command, type OptionSpec, type ParsedArgs } from './command.js';
import { withFlags } from './flags.js';
import { resolveSnapshot, resolveVm, VM_ARG } from './resolve.js';
import { bootFailure, vmDetails, vmTable, type VmInfo } from './vm-view.js';
import { TerminalSanitizer } from './terminal.js';
import { isPolicyView, policyText, type NetworkPolicyView } from './network.js';
import { settle, startLike, type Outcome } from './wait.js';

const waitOptions = {
  'no-wait': { type: 'boolean', description: 'return once the controller accepted the request, without waiting until the VM is ready' },
  timeout: { type: 'string', arg: 'SECONDS', int: true, description: 'how long to wait until the VM is ready (default 600); not ready in time: exit 1' },
  quiet: { type: 'boolean', description: 'no progress on stderr (also HANGAR_QUIET=1)' },
} as const satisfies OptionSpec;

const DEFAULT_WAIT_S = 600;

/** Prints the outcome of create/start/resume; exit 0 ready (or not waited for), 1 not ready. */
function report(o: Outcome, values: ParsedArgs['values'], io: CliIO, waited: boolean): number {
  if (o.note) io.err(`${o.ready || !waited ? '' : 'hangar: '}${o.note}\n`);
  if (values.json) io.out(JSON.stringify(o.vm) + '\n');
  else io.out(vmTable([o.vm]));
  if (!waited || o.ready) {
    if (!values.json && o.ready) io.out(`\nopen its desktop: hangar vm open ${o.vm.name || o.vm.id}\n`);
    return 0;
  }
  if (!o.note || o.vm.lastError) io.err(bootFailure(o.vm));
  return 1;
}

function waitFrom(values: ParsedArgs['values'], io: CliIO): { wait: boolean; o: { io: CliIO; quiet: boolean; timeoutMs: number } } {
  return { wait: values['no-wait'] !== true, o: { io, quiet: quietFrom(values, io), timeoutMs: atLeast(values.timeout, '--timeout', 1, DEFAULT_WAIT_S) * 1000 } };
}

/** A command on one VM: its flags are checked (`check`) before the VM is resolved and `go` runs. */
const onVm = (path: string, summary: string, example: string, go: (api: ApiClient, vm: VmInfo, args: ParsedArgs, io: CliIO) => Promise<number>,
  options: OptionSpec = jsonOption, check: (args: ParsedArgs, io: CliIO) => void = () => undefined): Command => ({
  path: ['vm', path], summary, usage: `ID${Object.keys(options).map((o) => ` [--${o}${options[o]!.arg ? ` ${options[o]!.arg}` : ''}]`).join('')}`,
  args: [VM_ARG], options, examples: [example],
  run: async (args, io) => {
    check(args, io);
    const api = clientFromEnv(io.env);
    return go(api, await resolveVm(api, need(args.positionals, 'ID')), args, io);
  },
});

const lifecycle = (action: 'stop' | 'pause', summary: string): Command => onVm(action, summary, `hangar vm ${action} alice`, async (api, vm, { values }, io) => {
  const v = await api.request<VmInfo>('POST', `/v1/vms/${encodeURIComponent(vm.id)}/${action}`);
  io.out(values.json ? JSON.stringify(v) + '\n' : vmTable([v]));
  return 0;
});

const startOrResume = (action: 'start' | 'resume', summary: string, details: string): Command => ({
  ...onVm(action, summary, `hangar vm ${action} alice`, async (api, vm, { values }, io) => {
    const { wait, o } = waitFrom(values, io);
    return report(await startLike(api, vm, action, wait, o), values, io, wait);
  }, { ...waitOptions, ...jsonOption }, ({ values }, io) => { waitFrom(values, io); }),
  examples: [`hangar vm ${action} alice`, `hangar vm ${action} vm-1a2b --no-wait --json`],
  details,
});

export const commands: Command[] = [
  {
    path: ['vm', 'create'],
    summary: 'Create a VM and wait until it is ready (progress on stderr)',
    usage: `[--image REF] [--profile ${PROFILES.join('|')}] [--vcpus N] [--mem MIB] [--name NAME] [--ttl SECONDS] [--vmm qemu|firecracker] [--from-snapshot ID] [--pool NAME] [--volume NAME:PATH] [--no-wait] [--timeout SECONDS] [--quiet] [--json]`,
    details: 'Boots from an image (the newest of the profile unless --image names one), or clones a golden snapshot with '
      + "--from-snapshot (take one with 'hangar snapshot create'). Ranges and defaults are the controller's: a value it "
      + 'refuses is reported for the flag that set it. Exit 1 when the VM does not become ready, with its error and console.',
    options: {
      image: { type: 'string', arg: 'REF', description: 'image id, unique id prefix or profile name (hangar image ls)' },
      profile: { type: 'string', arg: 'NAME', description: `what the VM runs: ${PROFILES.join(' or ')} (default desktop)` },
      vcpus: { type: 'string', arg: 'N', int: true, description: 'virtual CPUs' },
      mem: { type: 'string', arg: 'MIB', int: true, description: 'memory in MiB' },
      name: { type: 'string', arg: 'NAME', description: "a name to use instead of the id: lowercase letters, digits and '-'" },
      ttl: { type: 'string', arg: 'SECONDS', int: true, description: 'destroy the VM this many seconds after it was created (default: never)' },
      vmm: { type: 'string', arg: 'KIND', description: "qemu or firecracker (default: the controller's)" },
      'from-snapshot': { type: 'string', arg: 'ID', description: 'clone a golden snapshot (id, unique id prefix) instead of booting an image' },
      volume: { type: 'string', arg: 'NAME:PATH[:ro],…', description: "volumes to mount in the guest (see 'hangar volume')" },
      pool: { type: 'string', arg: 'NAME', description: "claim a ready VM from a warm pool (see 'hangar pool'); only --name, --ttl and --volume go with it" },
      idle: { type: 'string', arg: 'SECONDS', int: true, description: "idle timeout: hibernate (or pause) after this long without any access (0: never; default: the controller's)" },
      'idle-action': { type: 'string', arg: 'hibernate|pause', description: "what an idle VM does (default: the controller's)" },
      ...waitOptions,
      ...jsonOption,
    },
    examples: ['hangar vm create --name alice', 'hangar vm create --profile browser --mem 2048 --ttl 3600 --json', 'hangar vm create --from-snapshot snap-0123 --name bob', 'hangar vm create --pool desk --name carol'],
    run: async ({ values }, io) => {
      const { wait, o } = waitFrom(values, io);
      const api = clientFromEnv(io.env);
      const str = (k: string): string | undefined => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
      const given = { '--image': str('image'), '--profile': str('profile'), '--vcpus': str('vcpus'), '--mem': str('mem'), '--name': str('name'), '--ttl': str('ttl'), '--vmm': str('vmm'), '--from-snapshot': str('from-snapshot'), '--pool': str('pool') };
      const body: Record<string, unknown> = {};
      if (given['--image'] !== undefined) body.image = given['--image'];
      if (given['--profile'] !== undefined) body.profile = given['--profile'];
      if (given['--vcpus'] !== undefined) body.vcpus = Number(given['--vcpus']);
      if (given['--mem'] !== undefined) body.memMiB = Number(given['--mem']);
      if (given['--name'] !== undefined) body.name = given['--name'];
      if (given['--ttl'] !== undefined) body.ttlSeconds = Number(given['--ttl']);
      if (given['--vmm'] !== undefined) body.vmm = given['--vmm'];
      if (given['--pool'] !== undefined) body.pool = given['--pool'];
      if (given['--from-snapshot'] !== undefined) body.fromSnapshot = (await resolveSnapshot(api, given['--from-snapshot'])).id;
      if (str('volume') !== undefined) {
        body.volumes = str('volume')!.split(',').map((m) => { const [name, path, ro] = m.split(':'); return { name, path, ...(ro === 'ro' ? { readOnly: true } : {}) }; });
      }
      if (str('idle') !== undefined) body.idleTimeoutS = Number(str('idle'));
      if (str('idle-action') !== undefined) body.idleAction = str('idle-action');
      const v = await withFlags(given, () => api.request<VmInfo>('POST', '/v1/vms', body));
      return report(wait ? await settle(api, v, v, o) : { vm: v, ready: v.state === 'ready' }, values, io, wait);
    },
  },
  {
    path: ['vm', 'ls'], summary: 'List VMs (STATE says hibernated for a VM saved to disk; EXPIRES is its TTL)', usage: '[--json]', options: jsonOption,
    examples: ['hangar vm ls', 'hangar vm ls --json'],
    run: async ({ values }, io) => {
      const { vms } = await clientFromEnv(io.env).request<{ vms: VmInfo[] }>('GET', '/v1/vms');
      io.out(values.json ? JSON.stringify(vms) + '\n' : vms.length ? vmTable(vms) : "no VMs (create one with: hangar vm create)\n");
      return 0;
    },
  },
  onVm('show', 'Show everything about a VM, one field per line, its network policy too (--json: the API view; the policy: vm network --json)', 'hangar vm show alice', async (api, vm, { values }, io) => {
    if (values.json) {
      io.out(JSON.stringify(vm) + '\n');
      return 0;
    }
    // The policy (src/cli/network.ts; the proxy's password redacted); a controller without the route shows none.
    const policy = await api.request<NetworkPolicyView>('GET', `/v1/vms/${encodeURIComponent(vm.id)}/network`).catch(() => null);
    io.out(vmDetails(vm) + (isPolicyView(policy) ? policyText(policy, 'network ') : ''));
    return 0;
  }),
  onVm('rm', 'Destroy a VM and everything it holds', 'hangar vm rm alice', async (api, vm, { values }, io) => {
    await api.request('DELETE', `/v1/vms/${encodeURIComponent(vm.id)}`);
    io.out(values.json ? JSON.stringify({ id: vm.id, destroyed: true }) + '\n' : `destroyed ${vm.id} (${vm.name})\n`);
    return 0;
  }),
  startOrResume('start', 'Start a stopped, failed or hibernated VM and wait until it is ready',
    'A VM that is already running is left as it is (exit 0). Exit 1 when it does not become ready, with its error and console.'),
  lifecycle('stop', 'Stop a VM (its disk stays; hangar vm start boots it again)'),
  lifecycle('pause', 'Pause a running VM (its memory stays; hangar vm resume continues it)'),
  startOrResume('resume', 'Resume a paused or hibernated VM and wait until it is ready',
    "A VM that is already running is left as it is (exit 0). A stopped VM is started with 'hangar vm start'."),
  onVm('console', "The VM's serial console: the last lines, or --follow until Ctrl-C", 'hangar vm console alice --follow', async (api, vm, { values }, io) => {
    const lines = typeof values.lines === 'string' ? `&lines=${encodeURIComponent(values.lines)}` : '';
    const path = `/v1/vms/${encodeURIComponent(vm.id)}/console?follow=${values.follow === true}${lines}`;
    const given = { '--lines': typeof values.lines === 'string' ? values.lines : undefined };
    // The guest writes the console: unless --raw, nothing in it reaches the terminal as a control sequence.
    const clean = values.raw === true ? (s: string): string => s : ((t) => (s: string): string => t.push(s))(new TerminalSanitizer());
    if (!values.follow) {
      io.out(clean(await withFlags(given, () => api.request<string>('GET', path))));
      return 0;
    }
    const stop = interruptible(io);
    try {
      await withFlags(given, () => api.stream(path, (s) => io.out(clean(s)), stop.signal));
    } finally {
      stop.release();
    }
    return 0;
  }, { lines: { type: 'string', arg: 'N', int: true, description: 'how many of the last lines (default 200)' }, follow: { type: 'boolean', description: 'keep printing what the VM writes, until Ctrl-C or the VM goes away' },
    raw: { type: 'boolean', description: "pass the guest's bytes on as they are, escape sequences included (default: control sequences are removed)" } }),
  onVm('open', "Print a short-lived URL that opens the VM's desktop in a browser", 'hangar vm open alice', async (api, vm, { values }, io) => {
    const r = await api.request<{ url: string; expiresAt: string }>('POST', `/v1/vms/${encodeURIComponent(vm.id)}/viewer`);
    const url = r.url.startsWith('http') ? r.url : api.url + r.url;
    io.out(values.json ? JSON.stringify({ ...r, url }) + '\n' : `${url}\n(valid until ${r.expiresAt})\n`);
    return 0;
  }),
];
