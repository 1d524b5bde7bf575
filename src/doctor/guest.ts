// The view from inside the guest, through its agent (src/agent/port.ts: info → eth0's addresses, routes, listening
// sockets, failed processes), as evidence beside the console's: "eth0 is down inside the guest", "the VNC server is
// not listening", "x11vnc failed". The probe asks the agent (bounded in time); the judge is pure. An agent that
// does not answer is itself reported (the doctor then judges from outside only, as before).
import type { AgentPort, AgentStatus, GuestInfo } from '../agent/port.js';
import type { Evidence, Severity } from '../findings.js';
import { VNC_PORT } from '../guest-protocol.js';
import type { DoctorCode, DoctorFinding, Verdict } from './model.js';

type F = Omit<DoctorFinding, 'check'>;

/** What the probe saw: the agent's status and, when it answered, its info; or why it did not. */
export interface GuestFacts {
  status: AgentStatus;
  info: GuestInfo | null;
  /** The error code of a failed ask (AGENT_UNAVAILABLE, AGENT_TIMEOUT, AGENT_FAILED, …). */
  error?: { code: string; message: string };
}

const finding = (code: DoctorCode, severity: Severity, message: string, fix: string, evidence: string[]): F => ({ code, severity, option: null, message, fix, evidence: evidence.map((text): Evidence => ({ text })) });

/** Asks the VM's agent for its info, in at most `timeoutMs`. Never throws: a failure is a fact. */
export async function probeGuest(agents: AgentPort, vmId: string, timeoutMs = 5_000): Promise<{ ran: string[]; value: GuestFacts }> {
  const ran = [`agent: info of ${vmId} (interfaces, routes, listening sockets, failed processes)`];
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const s = await agents.session(vmId, { timeoutMs, signal: ctl.signal });
    const info = await Promise.race([s.info(), new Promise<never>((_r, rej) => ctl.signal.addEventListener('abort', () => rej(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'AGENT_TIMEOUT' }))))]);
    return { ran, value: { status: agents.status(vmId), info } };
  } catch (e) {
    const err = e as { code?: unknown; message?: string };
    return { ran, value: { status: agents.status(vmId), info: null, error: { code: typeof err.code === 'string' ? err.code : 'AGENT_UNAVAILABLE', message: err.message ?? String(e) } } };
  } finally {
    clearTimeout(timer);
  }
}

const ifaceLine = (i: GuestInfo['ifaces'][number]): string => `${i.name}: ${i.up ? 'UP' : 'DOWN'} ${i.addrs.join(' ') || '(no address)'}`;

/** Names of the desktop's servers, whose failure explains a VNC port nobody listens on. */
const DESKTOP_PROCESSES = /^(x11vnc|Xvfb|Xvnc|vnc|xvfb|openbox|chromium|firefox)/i;

export interface GuestExpect {
  /** The address the guest should hold on eth0 (its allocation, or a clone's guest address). */
  address: string | undefined;
  gateway: string | undefined;
  /** The VM is within its boot grace: a desktop not listening yet is not an error. */
  booting: boolean;
}

/** Judges what the agent saw inside the guest. Pure. `facts` null: no agent support in this controller. */
export function judgeGuest(facts: GuestFacts | null, want: GuestExpect): Verdict {
  if (!facts) return { saw: 'no guest agent support', findings: [], skipped: 'no agent' };
  if (!facts.info) {
    const failed = facts.status.state === 'failed' ? facts.status : null;
    const code = failed?.code ?? facts.error?.code ?? 'AGENT_UNAVAILABLE';
    const broke = code === 'AGENT_FAILED' || code === 'AGENT_PROTOCOL_ERROR' || Boolean(failed);
    return {
      saw: `the agent did not answer: ${code}`,
      findings: [broke
        ? finding('DOC_AGENT_FAILED', 'warning', `The guest agent broke the protocol (${code}${failed ? `: ${failed.message}` : ''}): its session was dropped, and nothing is known from inside the guest.`,
          'Something in the guest writes to the agent\'s channel, or the agent is not hangar-agent: check /dev/vport* in the guest. The controller reconnects with a fresh session.', [`${code}: ${failed?.message ?? facts.error?.message ?? ''}`])
        : finding('DOC_AGENT_UNAVAILABLE', want.booting ? 'info' : 'warning', `The guest agent does not answer (${code}${want.booting ? ', the VM is still booting' : ''}): nothing is known from inside the guest.`,
          'The init starts hangar-agent before READY: read the console for its start; an image built before the agent has none (hangar image build).', [`${code}: ${facts.error?.message ?? facts.status.state}`])],
    };
  }
  const info = facts.info;
  const findings: F[] = [];
  const eth0 = info.ifaces.find((i) => i.name === 'eth0');
  const ifaces = info.ifaces.map(ifaceLine);
  if (!eth0) {
    findings.push(finding('DOC_GUEST_NO_ETH0', 'error', `The guest has no eth0 (it sees ${info.ifaces.map((i) => i.name).join(', ') || 'no interface'}): its NIC or driver is missing, so nothing reaches it over the network.`,
      'Check the kernel has virtio-net built in (hangar kernel lint) and the VMM attaches the NIC.', ifaces));
  } else if (!eth0.up) {
    findings.push(finding('DOC_GUEST_ETH0_DOWN', 'error', `eth0 is down inside the guest: ${want.address ?? 'its address'} answers nothing (ARP, ICMP, VNC), although the host side may be fine.`,
      'Something in the guest took eth0 down (a script, a network manager): find it; `hangar vm exec ID ip link set eth0 up` brings it back.', ifaces));
  } else if (want.address && !eth0.addrs.some((a) => a.split('/')[0] === want.address)) {
    findings.push(finding('DOC_GUEST_ETH0_ADDRESS', 'error', `eth0 inside the guest holds ${eth0.addrs.join(', ') || 'no address'}, not ${want.address}: the host routes and ARPs for an address the guest does not have.`,
      'Find what re-addressed eth0 (a DHCP client, network manager or hook) and remove it: Hangar sets the address with ip=.', ifaces));
  }
  const routes = info.routes;
  if (eth0?.up && want.gateway && !routes.some((r) => /^default\b/.test(r) && r.includes(want.gateway!))) {
    findings.push(finding('DOC_GUEST_NO_ROUTE', 'error', `The guest has no default route via ${want.gateway}: its answers to the host side (through the gateway) go nowhere, so the host cannot reach it beyond the bridge.`,
      `Restore it: \`hangar vm exec ID ip route add default via ${want.gateway} dev eth0\`; then find what removed it.`, [`routes: ${routes.join('; ') || '(none)'}`]));
  }
  const vnc = info.listening.filter((l) => l.port === VNC_PORT && l.proto.startsWith('tcp'));
  const failed = info.failed;
  const desktopFailed = failed.filter((p) => DESKTOP_PROCESSES.test(p.name));
  if (!vnc.length) {
    findings.push(finding('DOC_GUEST_VNC_NOT_LISTENING', want.booting ? 'warning' : 'error', `Nothing listens on port ${VNC_PORT} inside the guest${desktopFailed.length ? ` (${desktopFailed.map((p) => p.name).join(', ')} failed)` : ''}${want.booting ? ' yet (the VM is still booting)' : ''}: the desktop cannot be viewed.`,
      'Read /run/hangar/x11vnc.log in the guest (`hangar vm exec ID cat /run/hangar/x11vnc.log`); restart the VM if the desktop died.',
      [`listening: ${info.listening.map((l) => `${l.proto} ${l.addr}:${l.port}`).join(', ') || '(nothing)'}`]));
  }
  if (failed.length) {
    findings.push(finding('DOC_GUEST_PROCESS_FAILED', desktopFailed.length ? 'error' : 'warning', `Processes failed inside the guest: ${failed.map((p) => `${p.name}${p.exit ? ` (${p.exit})` : ''}`).join(', ')}.`,
      'Read their logs in the guest (/run/hangar/*.log) with hangar vm exec.', failed.map((p) => `${p.name}${p.pid ? ` pid ${p.pid}` : ''}: ${p.exit ?? 'failed'}`)));
  }
  const saw = `${eth0 ? ifaceLine(eth0) : 'no eth0'}; ${routes.find((r) => r.startsWith('default')) ?? 'no default route'}; ${vnc.length ? `:${VNC_PORT} listening` : `nothing on :${VNC_PORT}`}; ${failed.length} failed process(es)`;
  return { saw, findings };
}
