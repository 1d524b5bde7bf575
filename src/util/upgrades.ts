// One HTTP server, several WebSocket endpoints upgraded on its raw 'upgrade' event (the VNC bridge, CDP, the agent's
// exec and terminal sockets), each in its own module. Each claims its paths here; a path nobody claims is refused by
// exactly one of them (the first still attached), so no endpoint needs to know the others' paths and no socket is
// answered twice or left hanging.
import type { Server } from 'node:http';

type Claim = (url: string | undefined) => boolean;
const registries = new WeakMap<Server, Claim[]>();

export interface UpgradeClaim {
  /** Whether this endpoint must refuse `url`: nobody claims it and this endpoint is the first attached. */
  refusesUnclaimed(url: string | undefined): boolean;
  release(): void;
}

export function claimUpgrades(server: Server, claim: Claim): UpgradeClaim {
  const list = registries.get(server) ?? [];
  registries.set(server, list);
  list.push(claim);
  return {
    refusesUnclaimed: (url) => list[0] === claim && !list.some((c) => c(url)),
    release: () => { const i = list.indexOf(claim); if (i >= 0) list.splice(i, 1); },
  };
}
