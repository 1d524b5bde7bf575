// What the controller adds to its core API: the desktop (viewer tokens, page, VNC bridge) and doctor. One place
// wires them to the VM manager.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ControllerHooks } from '../api/controller.js';
import { attachVncBridge, desktopRoutes, newViewerSecret, type DesktopDeps } from '../desktop/index.js';
import { doctorRoutes } from '../doctor/routes.js';
import { VNC_PORT } from '../guest-protocol.js';

/** The viewer-token key survives restarts (a link handed out stays valid for its few minutes). */
function viewerSecret(path: string): Buffer {
  if (existsSync(path)) {
    const key = Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
    if (key.length >= 32) return key;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const key = newViewerSecret();
  writeFileSync(path, key.toString('base64') + '\n', { mode: 0o600 });
  chmodSync(path, 0o600);
  return key;
}

export const controllerExtensions: NonNullable<ControllerHooks['extend']> = (ctx, manager, config) => {
  const desk: DesktopDeps = {
    // A hibernated VM counts as ready for a viewer: dialling restores it transparently.
    lookup: (id) => {
      const vm = ctx.store.getVm(id);
      if (!vm) return null;
      return { state: vm.hibernation ? 'ready' : vm.state };
    },
    dial: async (id, opts) => {
      const vm = ctx.store.mustGetVm(id);
      if (vm.hibernation || vm.state === 'paused') await manager.ensureRunning(id);
      return manager.dialVm(id, VNC_PORT, opts);
    },
    touch: (id) => manager.touch(id),
    metrics: ctx.metrics,
    secret: viewerSecret(join(config.paths.stateDir, 'viewer.key')),
    limits: { tokenTtlMs: config.viewerTokenTtlS * 1000, dialTimeoutMs: 120_000 },
    allowedOrigins: config.viewerOrigins,
  };
  return {
    routes: [...desktopRoutes(ctx, desk), ...doctorRoutes(ctx)],
    attach: (app) => {
      desk.log = app.log; // the same deps object: routes and bridge share one viewer registry
      const bridge = attachVncBridge(app.server, desk);
      // Viewers of a VM that pauses, stops or goes away are told so at once instead of hanging.
      const off = ctx.store.onEvent((e) => {
        const to = (e.data as { to?: string }).to;
        if (e.vmId && (e.type === 'vm.destroyed' || (e.type === 'vm.state' && to && ['paused', 'stopping', 'stopped', 'failed'].includes(to)))) {
          bridge.disconnect(e.vmId, e.type === 'vm.destroyed' ? 'VM destroyed' : `VM ${to}`);
        }
      });
      return () => { off(); void bridge.close(); };
    },
  };
};
