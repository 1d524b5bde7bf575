// A real controller (HTTP server, manager, loops) on a private test network and a temp state directory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadControllerConfig, type ControllerConfigInput } from '../../src/api/config.js';
import { startController, type Controller, type ControllerHooks } from '../../src/api/controller.js';
import assert from 'node:assert/strict';
import { collect } from './agent-binary.js';
import { createTestNetwork, type TestNetwork, type TestNetworkOptions } from './net.js';

export interface LiveController {
  c: Controller;
  net: TestNetwork;
  stateDir: string;
  env: NodeJS.ProcessEnv;
  /** Graceful controller stop + start on the same state (VMs keep running). */
  restart(): Promise<Controller>;
  destroy(): Promise<void>;
}

export async function startLiveController(opts: { net?: TestNetworkOptions; config?: ControllerConfigInput; hooks?: ControllerHooks } = {}): Promise<LiveController> {
  const stateDir = mkdtempSync(join(tmpdir(), 'hangar-live-'));
  const net = await createTestNetwork(opts.net);
  const env = { ...process.env, HANGAR_STATE_DIR: stateDir };
  const cfg = loadControllerConfig({
    env,
    overrides: {
      listen: { host: '127.0.0.1', port: 0 },
      net: {
        mode: net.cfg.mode, bridge: net.cfg.bridge, cidr: net.cfg.cidr, hostNetns: net.hostNetns, ...(net.cfg.netns ? { netns: net.cfg.netns } : {}),
        ...(opts.net?.overrides?.egress ? { egress: opts.net.overrides.egress } : {}),
      },
      readyTimeoutMs: 120_000,
      ...opts.config,
    },
  });
  const start = (): Promise<Controller> => startController(cfg, { logLevel: 'warn', ...opts.hooks });
  let c: Controller;
  try {
    c = await start();
  } catch (e) {
    await net.destroy();
    rmSync(stateDir, { recursive: true, force: true });
    throw e;
  }
  const live: LiveController = {
    c, net, stateDir, env: { ...env, HANGAR_URL: c.url, HANGAR_TOKEN: c.token },
    restart: async () => {
      await live.c.close();
      live.c = await start();
      live.env = { ...env, HANGAR_URL: live.c.url, HANGAR_TOKEN: live.c.token };
      return live.c;
    },
    destroy: async () => {
      try {
        await live.c.manager.destroyAll();
        await live.c.close();
      } finally {
        await net.destroy();
        rmSync(stateDir, { recursive: true, force: true });
      }
    },
  };
  return live;
}

/** One JSON call to the live controller's API with its admin token: the status and the parsed body (null for 204). */
export async function liveApi<T>(live: LiveController, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const r = await fetch(live.c.url + path, {
    method, headers: { authorization: `Bearer ${live.c.token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: r.status, body: (r.status === 204 ? null : await r.json()) as T };
}

/** A shell line in a live VM's guest as root, through its agent: its stdout (trimmed), its exit code asserted 0. */
export async function guestSh(live: LiveController, vm: string, cmd: string): Promise<string> {
  const s = await live.c.agents.session(vm, { timeoutMs: 60_000 });
  const h = await s.exec({ cmd, user: 'root' });
  const [out, err, exit] = await Promise.all([collect(h.stdout), collect(h.stderr), h.exit]);
  assert.equal(exit.code, 0, `${cmd}: ${err.toString()}`);
  return out.toString().trim();
}
