// The routes users reach a VM's guest agent with (exec, processes, files; the terminal's token and page are the
// desktop module's, src/desktop/terminal.ts), registered by the composition root. They reach the agent only through
// ctx.agents, the AgentPort (src/agent/port.ts); without one they answer AGENT_UNAVAILABLE (503).
import { HangarError } from '../errors.js';
import { EXEC_WS_ROUTE } from './agent-ws.js';
import { execRoutes } from './exec-routes.js';
import { fileRoutes } from './file-routes.js';
import type { ApiContext, ApiRoute } from './routes.js';
import { idParams } from './schemas.js';

export function agentRoutes(ctx: ApiContext): ApiRoute[] {
  const agents = () => ctx.agents;
  return [
    ...execRoutes(ctx, agents),
    {
      method: 'GET', url: EXEC_WS_ROUTE, auth: 'bearer', scope: 'write', websocket: true,
      summary: 'WebSocket for interactive exec: {"type":"start",…} or {"type":"attach","proc"}, then stdin (binary), eof, signal, resize, detach; output as binary messages (first byte 1 stdout, 2 stderr), then {"type":"exit"}',
      schema: { params: idParams },
      handler: () => { throw new HangarError('NOT_FOUND', 'a WebSocket: served on upgrade'); },
    },
    ...fileRoutes(ctx, agents),
  ];
}
