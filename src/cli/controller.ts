// `hangar up` starts the controller (in the background, or --foreground for systemd); `hangar down` stops it.
// Stopping the controller never stops VMs: they are adopted at the next start.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadControllerConfig, type ControllerConfig, type ControllerConfigInput } from '../api/config.js';
import { startController } from '../api/controller.js';
import { HangarError } from '../errors.js';
import { createProgress, progressModeFromEnv } from '../util/progress.js';
import { validInt } from '../util/validate.js';
import { clientFromEnv } from './client.js';
import { listNetns, removeHostNetwork } from '../net/host.js';
import { run } from '../util/exec.js';
import { jsonOption, type Command, type OptionSpec, type ParsedArgs } from './command.js';

const configOption = { config: { type: 'string', arg: 'FILE', description: 'the config file (default HANGAR_CONFIG, else HANGAR_STATE_DIR/config.json)' } } as const satisfies OptionSpec;

const upOptions = {
  foreground: { type: 'boolean', description: 'run in this process until SIGTERM/Ctrl-C (systemd: deploy/hangar.service)' },
  ...configOption,
  host: { type: 'string', arg: 'ADDR', description: 'listen address (default 127.0.0.1)' },
  port: { type: 'string', arg: 'N', int: true, description: 'listen port (default 7070; 0 picks a free one)' },
  ...jsonOption,
  quiet: { type: 'boolean', description: 'no progress on stderr (also HANGAR_QUIET=1)' },
} as const satisfies OptionSpec;

function configFrom(values: ParsedArgs['values']): ControllerConfig {
  const overrides: ControllerConfigInput = {};
  if (values.port !== undefined || values.host !== undefined) {
    overrides.listen = {
      ...(values.port !== undefined ? { port: validInt(values.port, '--port', 0, 65535) } : {}),
      ...(typeof values.host === 'string' ? { host: values.host } : {}),
    };
  }
  return loadControllerConfig({ ...(typeof values.config === 'string' ? { file: values.config } : {}), overrides });
}

/** The running controller's endpoint, if one answers. */
export async function runningController(cfg: ControllerConfig): Promise<{ url: string; pid: number } | null> {
  if (!existsSync(cfg.endpointPath)) return null;
  const ep = JSON.parse(readFileSync(cfg.endpointPath, 'utf8')) as { url: string; pid: number };
  try {
    const r = await fetch(`${ep.url}/healthz`, { signal: AbortSignal.timeout(2000) });
    return r.ok ? ep : null;
  } catch {
    return null;
  }
}

const bin = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bin/hangar.js');

export const commands: Command[] = [
  {
    path: ['up'],
    summary: 'Start the controller (background; --foreground for systemd and terminals)',
    usage: '[--foreground] [--config FILE] [--host ADDR] [--port N] [--json] [--quiet]',
    options: upOptions,
    details: 'Needs root. Prints where the controller listens and where its token is; the CLI finds both on its own '
      + '(or set HANGAR_URL and HANGAR_TOKEN to reach another controller). A running controller is left as it is.',
    examples: ['hangar up', 'hangar up --foreground --quiet', 'hangar up --port 0 --json'],
    run: async ({ values }, io) => {
      if (process.getuid?.() !== 0) throw new HangarError('NOT_ROOT', 'the controller manages network namespaces, TAPs and VMs: run it as root');
      const cfg = configFrom(values);
      const running = await runningController(cfg);
      if (running) {
        io.out(values.json ? JSON.stringify({ ...running, already: true, tokenPath: cfg.tokenPath }) + '\n' : `controller already running at ${running.url} (pid ${running.pid})\n`);
        return 0;
      }
      if (values.foreground) {
        const progress = createProgress(progressModeFromEnv({ quiet: values.quiet === true }));
        const c = await startController(cfg, { progress });
        io.err(`hangar: controller at ${c.url} (token in ${cfg.tokenPath})\n`);
        await new Promise<void>((res) => {
          const stop = (): void => { process.off('SIGTERM', stop); process.off('SIGINT', stop); res(); };
          process.on('SIGTERM', stop);
          process.on('SIGINT', stop);
        });
        await c.close();
        return 0;
      }
      mkdirSync(dirname(cfg.logPath), { recursive: true, mode: 0o700 });
      const log = openSync(cfg.logPath, 'a', 0o600);
      const args = [bin, 'up', '--foreground', '--quiet'];
      if (typeof values.config === 'string') args.push('--config', values.config);
      if (typeof values.port === 'string') args.push('--port', values.port);
      if (typeof values.host === 'string') args.push('--host', values.host);
      const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log] });
      child.unref();
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        const ep = await runningController(cfg);
        if (ep) {
          io.out(values.json ? JSON.stringify({ ...ep, tokenPath: cfg.tokenPath, log: cfg.logPath }) + '\n'
            : `controller running at ${ep.url} (pid ${ep.pid})\n  token: ${cfg.tokenPath}\n  log:   ${cfg.logPath}\n`);
          return 0;
        }
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      throw new HangarError('INTERNAL', `the controller did not come up; see ${cfg.logPath}`, { log: cfg.logPath });
    },
  },
  {
    path: ['down'],
    summary: 'Stop the controller (VMs keep running and are adopted at the next start); --purge also destroys every VM and removes the host network',
    usage: '[--purge] [--config FILE] [--json]',
    options: { purge: { type: 'boolean', description: "also destroy every VM and remove Hangar's network namespaces" }, ...configOption, ...jsonOption },
    examples: ['hangar down', 'hangar down --purge --json'],
    run: async ({ values }, io) => {
      const cfg = configFrom(values);
      const ep = await runningController(cfg);
      const destroyed: string[] = [];
      if (ep && values.purge) {
        const api = clientFromEnv({ ...(io.env ?? process.env), HANGAR_URL: ep.url });
        for (const vm of (await api.request<{ vms: { id: string }[] }>('GET', '/v1/vms')).vms) {
          await api.request('DELETE', `/v1/vms/${vm.id}`);
          destroyed.push(vm.id);
        }
      }
      if (ep) {
        process.kill(ep.pid, 'SIGTERM');
        const deadline = Date.now() + 30_000;
        const alive = (): boolean => { try { process.kill(ep.pid, 0); return true; } catch { return false; } };
        while (Date.now() < deadline && (existsSync(cfg.endpointPath) || alive())) await new Promise((r) => setTimeout(r, 100));
      }
      if (values.purge) {
        // Only what Hangar's own configuration names: its VM namespace (with bridge and TAPs) and veth, and the
        // host-side namespace when Hangar created it.
        await removeHostNetwork(cfg.net);
        if (cfg.createHostNetns && cfg.net.hostNetns && (await listNetns()).includes(cfg.net.hostNetns)) {
          await run('ip', ['netns', 'del', cfg.net.hostNetns], { timeoutMs: 15_000 });
        }
      }
      io.out(values.json ? JSON.stringify({ stopped: !!ep, pid: ep?.pid ?? null, destroyed, purged: values.purge === true }) + '\n'
        : `${ep ? `controller ${ep.pid} stopped` : 'controller is not running'}${values.purge ? `; ${destroyed.length} VM(s) destroyed, host network removed` : ''}\n`);
      return 0;
    },
  },
];
