// Network probes from inside a guest, as functions over a Runner (argv → exit code and output): the same suite
// runs in a FAKE GUEST's namespace now and through the guest agent (AgentSession.exec) in a real guest later.
// They use only tools a Debian guest has: curl, ping, bash's /dev/tcp, getent.
import type { Runner } from './world.js';

export interface HttpResult { ok: boolean; code: number | null; body: string }

export async function httpGet(r: Runner, url: string, o: { caCert?: string; timeoutS?: number } = {}): Promise<HttpResult> {
  const res = await r(['curl', '-sS', '--noproxy', '*', '-m', String(o.timeoutS ?? 3), ...(o.caCert ? ['--cacert', o.caCert] : []), url], ((o.timeoutS ?? 3) + 5) * 1000);
  return { ok: res.code === 0, code: res.code, body: res.stdout };
}

/** True when a TCP connection to host:port is established within timeoutS. */
export async function tcpOpen(r: Runner, host: string, port: number, timeoutS = 2): Promise<boolean> {
  const res = await r(['timeout', String(timeoutS), 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port}`], (timeoutS + 5) * 1000);
  return res.code === 0;
}

export async function pingable(r: Runner, host: string): Promise<boolean> {
  return (await r(['ping', '-n', '-c', '1', '-W', '1', host])).code === 0;
}

/** The addresses a name resolves to through the guest's resolver ([] when refused or unknown). */
export async function resolve(r: Runner, name: string): Promise<string[]> {
  const res = await r(['getent', 'ahostsv4', name]);
  if (res.code !== 0) return [];
  return [...new Set(res.stdout.split('\n').map((l) => l.split(/\s+/)[0]!).filter(Boolean))];
}
