// An API server with the agent routes over a FAKE agent (test/support/fake-agent.ts: commands run on the host in a
// temp directory), listening on 127.0.0.1 with the agent WebSockets attached, and VMs as store rows.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { agentRoutes } from '../../src/api/agent-routes.js';
import { attachAgentSockets, type AgentSockets } from '../../src/api/agent-ws.js';
import type { DesktopDeps } from '../../src/desktop/deps.js';
import { desktopRoutes } from '../../src/desktop/routes.js';
import { terminalAdmission, terminalRoutes } from '../../src/desktop/terminal.js';
import { HangarMetrics } from '../../src/metrics.js';
import { createApiHarness, type ApiHarness } from '../support/api.js';
import { createFakeAgent, type FakeAgentOptions, type FakeAgentPort } from '../support/fake-agent.js';

export interface AgentApi extends ApiHarness {
  agent: FakeAgentPort;
  url: string;
  sockets: AgentSockets;
  desk: DesktopDeps;
}

/** The viewer/terminal token secret of the harness. */
export const TEST_SECRET = Buffer.alloc(32, 7);

export async function createAgentApi(opts: Partial<FakeAgentOptions> = {}): Promise<AgentApi> {
  const root = mkdtempSync(join(tmpdir(), 'hangar-fake-agent-'));
  const agent = createFakeAgent({ root, ...opts });
  let url = '';
  const held: { store?: ApiHarness['store'] } = {};
  const desk: DesktopDeps = {
    lookup: (id) => { const n = held.store?.viewerNonce(id); return n ? { state: 'ready', viewerNonce: n } : null; },
    rotateNonce: (id) => (held.store?.rotateViewerNonce(id) ?? null) !== null,
    dial: () => Promise.reject(new Error('no desktop here')),
    metrics: new HangarMetrics(), secret: TEST_SECRET, ownOrigins: () => [url],
  };
  const h = await createApiHarness({ extraRoutes: (c) => [...agentRoutes({ ...c, agents: agent }), ...terminalRoutes(c, desk), ...desktopRoutes(c, desk)] });
  held.store = h.store;
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
  const sockets = attachAgentSockets(h.app.server, { ctx: h.ctx, agents: () => agent, admitTerminal: terminalAdmission(desk), terminalArgv: ['/bin/sh', '-i'] });
  for (const [id, state] of [['vm-a', 'ready'], ['vm-b', 'ready'], ['vm-off', 'stopped']] as const) h.insertVm(id, state);
  const close = h.close;
  return {
    ...h, agent, sockets, url, desk,
    close: async () => { agent.close(); await sockets.close(); await close(); rmSync(root, { recursive: true, force: true }); },
  };
}
