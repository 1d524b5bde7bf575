// Network probes from inside a guest, as functions over a Runner (argv → exit code and output): the same suite
// runs in a FAKE GUEST's namespace now and through the guest agent (AgentSession.exec) in a real guest later.
// They use only tools a Debian guest has: curl (or busybox wget), ping, bash's /dev/tcp and /dev/udp, getent.
import type { Runner } from './world.js';

export interface HttpResult { ok: boolean; code: number | null; body: string; stderr: string }

/**
 * HTTP GET: curl where the guest has it (fake guests), else HTTP/1.0 over bash's /dev/tcp (the desktop image has
 * no curl and its busybox wget crashes): http:// only there, the status must be 2xx, the body is the answer.
 */
const HTTP_SCRIPT = [
  'if command -v curl >/dev/null 2>&1; then exec curl -sS --noproxy "*" -m "$1" ${4:+--cacert "$4"} "$2"; fi',
  'case "$2" in http://*) ;; *) echo "without curl only http:// URLs" >&2; exit 2;; esac',
  'rest=${2#http://}; hp=${rest%%/*}; path=/; [[ $rest == */* ]] && path="/${rest#*/}"',
  'h=${hp%%:*}; p=80; [[ $hp == *:* ]] && p=${hp#*:}',
  'exec timeout "$1" bash --norc --noprofile -c "$3" tcp "$h" "$p" "$path"',
].join('\n');
/** The request itself (its own argument, so its quoting stays simple): host, port, path. */
const HTTP_OVER_TCP = [
  'exec 3<>"/dev/tcp/$1/$2" || exit 7',
  "printf 'GET %s HTTP/1.0\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n' \"$3\" \"$1\" >&3",
  "r=$(cat <&3); s=${r%%$'\\r'*}",
  '[[ $s == HTTP/1.?\\ 2* ]] || { echo "$s" >&2; exit 22; }',
  "printf %s \"${r#*$'\\r\\n\\r\\n'}\"",
].join('\n');

export async function httpGet(r: Runner, url: string, o: { caCert?: string; timeoutS?: number } = {}): Promise<HttpResult> {
  const t = String(o.timeoutS ?? 3);
  // --norc: bash run with a socket as stdin (as Node spawns it) reads ~/.bashrc as if under rshd; a host's
  // .bashrc (pyenv init…) then took seconds and the probe timed out.
  const res = await r(['bash', '--norc', '--noprofile', '-c', HTTP_SCRIPT, 'http', t, url, HTTP_OVER_TCP, ...(o.caCert ? [o.caCert] : [])], ((o.timeoutS ?? 3) + 5) * 1000);
  return { ok: res.code === 0, code: res.code, body: res.stdout, stderr: res.stderr };
}

/** True when a TCP connection to host:port is established within timeoutS. */
export async function tcpOpen(r: Runner, host: string, port: number, timeoutS = 2): Promise<boolean> {
  const res = await r(['timeout', String(timeoutS), 'bash', '--norc', '-c', `exec 3<>/dev/tcp/${host}/${port}`], (timeoutS + 5) * 1000);
  return res.code === 0;
}

export async function pingable(r: Runner, host: string): Promise<boolean> {
  const script = 'if command -v ping >/dev/null 2>&1; then exec ping -n -c 1 -W 1 "$1"; else exec busybox ping -c 1 -W 1 "$1"; fi';
  return (await r(['sh', '-c', script, 'ping', host])).code === 0;
}

/** The addresses a name resolves to through the guest's resolver ([] when refused or unknown). */
export async function resolve(r: Runner, name: string): Promise<string[]> {
  const res = await r(['getent', 'ahostsv4', name]);
  if (res.code !== 0) return [];
  return [...new Set(res.stdout.split('\n').map((l) => l.split(/\s+/)[0]!).filter(Boolean))];
}

/** Sends one UDP datagram (bash's /dev/udp); true when it left the guest's stack (not that anything received it). */
export async function udpSend(r: Runner, host: string, port: number, payload: string): Promise<boolean> {
  return (await r(['bash', '--norc', '-c', 'printf %s "$1" > "/dev/udp/$2/$3"', 'udp', payload, host, String(port)])).code === 0;
}
