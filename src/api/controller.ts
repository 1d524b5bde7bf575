// The composition root: the one place that wires Hangar's parts — state, network, VMM drivers (from the registry),
// the VM manager, golden snapshots, the desktop bridge, the doctor, background loops and the HTTP server — started
// as named steps with their undos, and shut down gracefully (VMs keep running and are adopted at the next start).
// Route modules receive typed ports (ApiContext) in one way; nothing else constructs parts.
import { rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { Agents } from '../agent/agents.js';
import type { AgentPort } from '../agent/port.js';
import { ComputerService } from '../control/computer.js';
import { controlRoutes } from '../control/routes.js';
import { attachCdpBridge } from '../control/cdp-bridge.js';
import { recordingRoutes } from '../control/recording-routes.js';
import { RecordingStore } from '../desktop/recordings.js';
import { publicOrigins } from '../desktop/deps.js';
import { attachVncBridge, desktopRoutes, listenOrigins, type DesktopDeps } from '../desktop/index.js';
import { terminalAdmission, terminalRoutes } from '../desktop/terminal.js';
import { loadOrCreateViewerSecret } from '../desktop/secret.js';
import { doctorRoutes } from '../doctor/routes.js';
import { createE2b, E2bRows } from '../e2b/index.js';
import { HangarError } from '../errors.js';
import { VNC_PORT } from '../guest-protocol.js';
import { listImages, resolveImage } from '../image/store.js';
import { HangarMetrics, wireEgressMetrics } from '../metrics.js';
import { listNetns, setupHostNetwork } from '../net/host.js';
import { createEgress, type Egress } from '../net/egress/egress.js';
import { networkRoutes } from './network-routes.js';
import { POOL_TENANT, poolForTemplate } from '../pool/plan.js';
import { poolMetrics } from '../pool/metrics.js';
import { poolRoutes } from '../pool/routes.js';
import type { VmRecord } from '../domain/vm.js';
import { PoolService } from '../pool/service.js';
import { SnapshotStore } from '../snapshot/store.js';
import { Store } from '../store/store.js';
import { hashKey, newKeyId } from '../tenancy/keys.js';
import { run } from '../util/exec.js';
import { writeFileAtomic } from '../util/files.js';
import type { Progress } from '../util/progress.js';
import { runSteps } from '../util/steps.js';
import { VmManager, type ReconcileReport } from '../vm/manager.js';
import type { VmmDriver } from '../vmm/driver.js';
import { setupConfinement, type Confinement } from '../vmm/confine.js';
import { createDrivers } from '../vmm/registry.js';
import type { VmmKind } from '../vmm/types.js';
import { agentRoutes } from './agent-routes.js';
import { authorizeBearerForVm } from './tenancy.js';
import { attachAgentSockets } from './agent-ws.js';
import { loadOrCreateToken } from './auth.js';
import type { ControllerConfig } from './config.js';
import type { ApiContext, ApiRouteModule } from './routes.js';
import { buildServer, redactUrl } from './server.js';
import { consoleTrimmer, healthLoop, idler, ttlReaper, type Loop } from './workers.js';
import { activeAgents, countsAsActivity } from '../vm/activity.js';
import { sessionParts } from '../volume/wire.js';
import type { VolumeService } from '../volume/service.js';
import { ensureTraversable, handOver } from '../vmm/confine.js';

export interface Controller {
  config: ControllerConfig;
  app: FastifyInstance;
  manager: VmManager;
  store: Store;
  metrics: HangarMetrics;
  /** Sessions with the VMs' guest agents. */
  agents: AgentPort;
  /** Volumes: `volumes.attach(vmId, { name, path, readOnly? }, tenant?)` attaches one to a running VM (a pool's claim). */
  volumes: VolumeService;
  token: string;
  url: string;
  reconcile: ReconcileReport;
  loops: Loop[];
  /** Graceful: stop loops, close the server, detach from VMs (they keep running). */
  close(): Promise<void>;
}

export interface ControllerHooks {
  /** Drivers instead of the registry's (tests: a FAKE Firecracker). */
  drivers?: Partial<Record<VmmKind, VmmDriver>>;
  progress?: Progress;
  /** Log destination (default: stdout as JSON lines). */
  logStream?: NodeJS.WritableStream;
  logLevel?: string;
  /** false: no netd and no per-VM egress (the walls of the host network still stand). */
  egress?: false;
}

/**
 * The desktop module's dependencies over the manager: viewers reach VMs only through it, by id only (never by
 * name), and their tokens are signed over the VM's viewer nonce, kept in the store with the VM.
 */
function desktopDeps(ctx: ApiContext, manager: VmManager, store: Store, config: ControllerConfig, metrics: HangarMetrics, address: () => AddressInfo | string | null, secret: Buffer): DesktopDeps {
  let own: string[] | undefined;
  return {
    // A hibernated VM counts as ready for a viewer: dialling restores it transparently.
    lookup: (id) => {
      const vm = manager.find(id);
      const viewerNonce = store.viewerNonce(id);
      if (!vm || vm.id !== id || !viewerNonce) return null;
      const tenant = vm.tenantId ?? 'default';
      return { state: vm.hibernation || vm.state === 'paused' ? 'ready' : vm.state, viewerNonce, tenant: { id: tenant, maxViewers: store.tenancy.getTenant(tenant)?.quotas.viewers ?? null } };
    },
    rotateNonce: (id) => store.rotateViewerNonce(id) !== null,
    // Once listening, the listen address does not change: computed once.
    ownOrigins: () => {
      if (own) return own;
      const a = address();
      if (!a || typeof a === 'string') return [];
      const ifaces = Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((i) => i.address.split('%')[0]!));
      return (own = listenOrigins({ host: config.listen.host, address: a.address, port: a.port }, ifaces));
    },
    dial: async (id, opts) => {
      const vm = ctx.vms.get(id);
      if (vm.id !== id) throw new HangarError('VM_NOT_FOUND', `no VM ${id}`, { id });
      if (vm.hibernation || vm.state === 'paused') await manager.ensureRunning(id);
      return manager.dialVm(id, VNC_PORT, opts);
    },
    touch: (id) => manager.touch(id),
    hold: (id) => manager.hold(id),
    metrics,
    secret,
    limits: { tokenTtlMs: config.viewerTokenTtlS * 1000, dialTimeoutMs: 120_000 },
    allowedOrigins: config.viewerOrigins,
  };
}

/** controller.json, which the CLI reads to find the controller: atomic (never seen half-written), 0600. */
export async function writeEndpoint(path: string, url: string): Promise<void> {
  await writeFileAtomic(path, JSON.stringify({ url, pid: process.pid }) + '\n', { mode: 0o600 });
}

/** The controller's umask: whatever it (or a VMM it spawns) creates without an explicit mode is private. */
export const CONTROLLER_UMASK = 0o077;

export async function startController(config: ControllerConfig, hooks: ControllerHooks = {}): Promise<Controller> {
  // Here rather than in `hangar up`: every way a controller starts (the CLI, systemd's --foreground, tests) gets it.
  process.umask(CONTROLLER_UMASK);
  const ctx = {} as { confine: Confinement; store: Store; manager: VmManager; agents: Agents; pools: PoolService; volumes: VolumeService; app: FastifyInstance; token: string; reconcile: ReconcileReport; loops: Loop[]; detach?: () => void; egress?: Egress };
  const metrics = new HangarMetrics();
  const logger = pino(
    {
      level: hooks.logLevel ?? 'info',
      redact: { paths: ['req.headers.authorization', 'token', '*.token'], censor: '[REDACTED]' },
      serializers: { req: (req: { method: string; url: string; id: string }) => ({ method: req.method, url: redactUrl(req.url), id: req.id }) },
    },
    hooks.logStream ?? process.stdout,
  );
  const net = config.net;
  const keyReplaced = (path: string) => (reason: string): void => { logger.warn({ path, reason }, 'key file replaced by a new key'); };
  await runSteps<typeof ctx>([
    { name: 'state database', run: (c) => { c.store = new Store(config.dbPath); return () => c.store.close(); } },
    {
      name: 'API token',
      run: async (c) => {
        c.token = await loadOrCreateToken(config.tokenPath, keyReplaced(config.tokenPath));
        // The token file holds the default tenant's admin key (created here at the first start; a replaced file rotates it).
        c.store.tenancy.syncTokenFileKey(hashKey(c.token), newKeyId());
      },
    },
    {
      name: 'host-side namespace',
      run: async () => {
        if (!config.createHostNetns || !net.hostNetns || (await listNetns()).includes(net.hostNetns)) return;
        await run('ip', ['netns', 'add', net.hostNetns], { timeoutMs: 15_000 });
        await run('ip', ['-n', net.hostNetns, 'link', 'set', 'lo', 'up'], { timeoutMs: 15_000 });
        const ns = net.hostNetns;
        return async () => { await run('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 15_000 }); };
      },
    },
    { name: `host network (${net.mode})`, run: () => setupHostNetwork(net) },
    {
      name: 'VMM confinement',
      run: async (c) => {
        const s = await setupConfinement(config.vmm);
        c.confine = s.confine;
        logger.info({ user: s.confine.user?.name ?? null, cgroups: s.cgroups }, 'VMM confinement');
      },
    },
    {
      // Walls and door: netd (guest DNS, proxy relay) where the bridge lives: Hangar's VM namespace, or in bridge
      // mode the host's namespace (there netd listens on the gateway address only, see netdListenHost).
      name: 'VM egress (netd)',
      run: async (c) => {
        if (hooks.egress === false) return;
        try {
          c.egress = await createEgress(net, { stateDir: config.paths.stateDir });
        } catch (e) {
          // Fails closed: without per-VM rules, the walls drop every guest's traffic but the host's own.
          logger.error({ err: (e as Error).message }, 'netd did not start: VMs get no egress (the host still reaches them)');
          return;
        }
        return async () => { await c.egress?.close(); };
      },
    },
    {
      name: 'VM manager',
      run: (c) => {
        // QEMU guests get the agent channel: snapshots and hibernation resync their clock and entropy through it.
        const confine = c.confine;
        const drivers = hooks.drivers ?? createDrivers({
          qemu: { guestAgent: true, confine },
          firecracker: config.firecrackerJailer ? { jailer: config.firecrackerJailer, confine } : {},
        });
        // The VMs' TAPs belong to the VMM user: QEMU opens them after dropping root.
        const vmNet = confine.user ? { ...net, tapOwner: { uid: confine.user.uid, gid: confine.user.gid } } : net;
        c.manager = new VmManager({
          store: c.store, stateDir: config.paths.stateDir, net: vmNet, drivers, defaultVmm: config.defaultVmm,
          images: { resolve: (ref) => resolveImage(ref, config.paths), list: () => listImages(config.paths) },
          readyTimeoutMs: config.readyTimeoutMs, maxVms: config.maxVms, metrics,
          snapshotStore: new SnapshotStore(config.paths.snapshotsDir),
          ...(c.egress ? { egress: c.egress } : {}),
          ...(hooks.progress ? { progress: hooks.progress } : {}),
          log: (msg, data) => logger.info(data ?? {}, msg),
        });
        return () => c.manager.detachAll();
      },
    },
    { name: 'reconcile', run: async (c) => { c.reconcile = await c.manager.reconcile(); } },
    {
      name: 'egress metrics',
      run: (c) => {
        const eg = c.egress;
        if (!eg) return;
        wireEgressMetrics(metrics, async () => {
          const byIp = new Map(c.store.listVms().flatMap((v) => (v.net ? [[v.net.ip, v.id] as const] : [])));
          const [counters, st] = await Promise.all([eg.counters(), eg.netdStats().catch(() => null)]);
          const perVm = [...counters.perVm].flatMap(([ip, v]) => (byIp.has(ip) ? [{ vm: byIp.get(ip)!, ...v }] : []));
          return { perVm, dns: st ? st.dns : null };
        });
      },
    },
    {
      name: 'HTTP server',
      run: async (c) => {
        c.agents = new Agents({
          channel: (id) => c.manager.guestChannel(id),
          // A hibernated or paused VM is woken for its agent, as for a viewer.
          prepare: async (id) => {
            const vm = c.manager.get(id);
            if (vm.hibernation || vm.state === 'paused') await c.manager.ensureRunning(id);
          },
          log: (msg, data) => logger.info(data ?? {}, msg),
        });
        // Every use of an agent wakes its VM and counts as activity; its long-lived streams hold the VM awake.
        const agents = activeAgents(c.agents, {
          wake: async (id) => { const vm = c.manager.find(id); if (vm && (vm.hibernation || vm.state === 'paused')) await c.manager.ensureRunning(id); },
          touch: (id) => c.manager.touch(id), hold: (id) => c.manager.hold(id),
        });
        const user = c.confine.user;
        const sessions = sessionParts({
          vms: c.manager, volumes: c.store.volumes, agents, dir: join(config.paths.stateDir, 'volumes'),
          quotas: (t) => ({ quotas: c.store.tenancy.getTenant(t)?.quotas ?? null, vmDiskMiB: c.store.tenancy.usage(t).diskMiB }),
          ...(user ? { handOver: async (f: string) => { await handOver(user, { disk: f }); await ensureTraversable(join(config.paths.stateDir, 'volumes')); } } : {}),
          idleDefaults: { timeoutS: config.hibernateAfterS, action: config.idleAction },
          onEvent: (l) => c.store.onEvent(l), log: (msg, data) => logger.info(data ?? {}, msg),
        });
        c.volumes = sessions.service;
        // Warm pools (src/pool/): members wait paused in their own tenant; refilling starts with the background loops.
        c.pools = new PoolService(c.store.pools, c.manager, c.manager.snapshots, c.agents, config.pools, (msg, data) => logger.info(data ?? {}, msg));
        c.pools.setExpiry = (id, expiresAt) => c.store.patchVm(id, { expiresAt });
        c.pools.volumes = c.volumes; // volumes asked for at claim: swapped into the running member, mounted
        c.pools.onSnapshot = (id) => c.store.tenancy.setSnapshotOwner(id, POOL_TENANT);
        const pools = c.pools;
        pools.metrics = poolMetrics(metrics.registry, () => pools.list());
        const ports: ApiContext = { vms: sessions.vms, snapshots: c.manager.snapshots, events: c.store, metrics, token: c.token, tenancy: c.store.tenancy, agents, pools };
        const keyPath = join(config.paths.stateDir, 'viewer.key');
        const desk = desktopDeps(ports, c.manager, c.store, config, metrics, () => c.app.server.address(), await loadOrCreateViewerSecret(keyPath, keyReplaced(keyPath)));
        // Computer use: the controller's own RFB client, over the same dial as viewers (restores a hibernated VM).
        const computer = new ComputerService({ dial: (id) => desk.dial(id), touch: (id) => c.manager.touch(id), hold: (id) => c.manager.hold(id) });
        const control = {
          lookup: (id: string) => {
            const v = desk.lookup(id);
            const rec = v ? c.manager.find(id) : undefined;
            return v && rec ? { ...v, profile: rec.profile } : null;
          },
          secret: desk.secret, computer,
          // CDP goes through the guest agents (src/agent/port.ts).
          agents,
        };
        // Session recordings under the state dir; viewer sessions too when the config says so. Pruned hourly.
        const recordings = new RecordingStore(join(config.paths.stateDir, 'recordings'), { maxAgeS: config.recordings.maxAgeS, maxBytes: config.recordings.maxBytes });
        if (config.recordings.viewerSessions) desk.record = (id) => recordings.start(id, 'viewer');
        recordings.prune();
        const pruner = setInterval(() => { try { recordings.prune(); } catch (e) { logger.warn({ err: String(e) }, 'recording prune failed'); } }, 3_600_000);
        pruner.unref();
        // A recording holds its VM awake while it runs, as a viewer does.
        const recDeps = { lookup: control.lookup, secret: desk.secret, recordings, dial: async (id: string) => { const s = await desk.dial(id); const release = c.manager.hold(id); s.once('close', release); return s; } };
        // The E2B SDKs' API (REST under /e2b, envd under /e2b/sandbox): src/e2b/.
        // A sandbox whose template has a warm pool with a ready member is claimed from it (no network options:
        // a pool's members have the default policy); otherwise it boots.
        const e2bClaim = async (input: { fromSnapshot?: string; profile?: string; network?: unknown }, tenant: string): Promise<VmRecord | null> => {
          if (input.network !== undefined) return null;
          const pool = poolForTemplate(pools.list(), input);
          if (!pool) return null;
          const r = await pools.claim(pool, { tenant });
          return r.hit ? r.vm : await r.ready;
        };
        const e2b = createE2b({ limits: config.limits, readyTimeoutMs: config.readyTimeoutMs, desktop: computer, persist: new E2bRows(c.store.database), claim: e2bClaim, publicOrigin: () => [...publicOrigins(desk).origins][0], log: (msg, data) => logger.info(data, msg) });
        const modules: ApiRouteModule[] = [e2b.routes, (p) => desktopRoutes(p, desk), (p) => terminalRoutes(p, desk), agentRoutes, (p) => controlRoutes(p, control), (p) => recordingRoutes(p, recDeps), (p) => doctorRoutes(c.manager, () => p.agents), () => networkRoutes(c.manager), () => sessions.routes, () => poolRoutes(pools)];
        c.app = await buildServer(ports, { loggerInstance: logger as never, limits: config.limits, streams: config.streams, extraRoutes: (p) => modules.flatMap((m) => m(p)) });
        // API use of a VM (anything under /v1/vms/:id/…, every change to it) is activity for the idler.
        c.app.addHook('preHandler', async (req) => { const id = (req.params as { id?: string } | undefined)?.id; if (id && countsAsActivity(req.method, req.routeOptions.url)) c.manager.touch(id); });
        const detachE2b = await e2b.attach(c.app, ports);
        desk.log = c.app.log; // the same deps object: routes and bridge share one viewer registry
        const bridge = attachVncBridge(c.app.server, desk);
        const cdp = attachCdpBridge(c.app.server, { ...control, authorizeBearer: (h, id) => authorizeBearerForVm(ports, h, id, 'write').vmId, origins: () => publicOrigins(desk).origins, log: c.app.log });
        const sockets = attachAgentSockets(c.app.server, { ctx: ports, agents: () => ports.agents, admitTerminal: terminalAdmission(desk), log: c.app.log });
        // Before a VM's state is saved, the host's own connections into it end while it runs (src/vm/saved-state.ts).
        c.manager.setQuiesce(async (id, why) => {
          await Promise.all([computer.shutdown(id), why === 'hibernate' ? bridge.quiesce(id, 'VM hibernating') : Promise.resolve(0)]);
        });
        // Viewers of a VM that pauses, stops or goes away are told so at once instead of hanging.
        const off = c.store.onEvent((e) => {
          const to = (e.data as { to?: string }).to;
          if (e.vmId && (e.type === 'vm.destroyed' || (e.type === 'vm.state' && to && ['paused', 'stopping', 'stopped', 'failed'].includes(to)))) {
            bridge.disconnect(e.vmId, e.type === 'vm.destroyed' ? 'VM destroyed' : `VM ${to}`);
            computer.drop(e.vmId);
          }
          // A VM that stops or goes away loses its agent session (a restore or resume starts a new VMM: the next
          // use opens a fresh session over the new channel).
          if (e.vmId && (e.type === 'vm.destroyed' || (e.type === 'vm.state' && to && ['stopping', 'stopped', 'failed'].includes(to)))) {
            c.agents.invalidate(e.vmId, e.type === 'vm.destroyed');
          }
        });
        c.detach = () => { off(); sessions.close(); detachE2b(); clearInterval(pruner); computer.close(); cdp.close(); void bridge.close(); void sockets.close(); c.agents.closeAll(); };
        await c.app.listen({ host: config.listen.host, port: config.listen.port });
        return async () => { c.detach?.(); await c.app.close(); };
      },
    },
    {
      name: 'background loops',
      run: (c) => {
        c.loops = [
          ttlReaper(c.manager, c.store, config.reapIntervalMs).start(),
          healthLoop(c.manager, c.store, c.manager.vmDialer, config.healthIntervalMs).start(),
          consoleTrimmer(c.manager, c.store, config.consoleMaxBytes, config.reapIntervalMs).start(),
          // Always on: a VM may have its own idle timeout when the config's default is 0 (never).
          idler(c.manager, c.store, { defaultS: config.hibernateAfterS, defaultAction: config.idleAction, own: () => c.store.volumes.allIdle() },
            Math.min(config.reapIntervalMs, config.hibernateAfterS > 0 ? config.hibernateAfterS * 1000 : config.reapIntervalMs, 2000)).start(),
        ];
        c.pools.start();
        return async () => { await Promise.all(c.loops.map((l) => l.stop())); await c.pools.stop(); };
      },
    },
  ], ctx, hooks.progress);

  const addr = ctx.app.server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  await writeEndpoint(config.endpointPath, url);
  logger.info({ url, reconcile: ctx.reconcile }, 'controller ready');
  return {
    config, app: ctx.app, manager: ctx.manager, store: ctx.store, metrics, agents: ctx.agents, volumes: ctx.volumes, token: ctx.token, url, reconcile: ctx.reconcile, loops: ctx.loops,
    close: async () => {
      // Not the start-up undo stack: the host network and namespaces stay, running VMs still use them.
      rmSync(config.endpointPath, { force: true });
      await Promise.all(ctx.loops.map((l) => l.stop()));
      await ctx.pools.stop();
      ctx.detach?.();
      await ctx.app.close();
      await ctx.manager.detachAll();
      await ctx.egress?.close();
      ctx.store.close();
      logger.info('controller stopped; VMs keep running');
    },
  };
}
