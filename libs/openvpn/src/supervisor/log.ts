/**
 * OpenVPN 2.6 log lines (stdout at `verb 3`) turned into structured events. Server-mode
 * lines about one client start with `ip:port ` or `common-name/ip:port `; the timestamp
 * prefix (`2026-11-22 11:00:00 `) is optional. Lines nobody models come back as `other`.
 */

export type OpenVpnLogKind =
  | 'initialized'
  | 'hold-waiting'
  | 'management'
  | 'tcp-connection'
  | 'tls-initial'
  | 'tls-error'
  | 'verify-error'
  | 'auth-failed'
  | 'peer-connected'
  | 'connection-reset'
  | 'bind-error'
  | 'tun-error'
  | 'options-error'
  | 'fatal'
  | 'exiting'
  | 'other';

export interface OpenVpnLogEvent {
  readonly kind: OpenVpnLogKind;
  /** The message without timestamp and client prefix. */
  readonly message: string;
  /** `ip:port` of the client the line is about, if any. */
  readonly remote?: string;
  readonly commonName?: string;
  readonly line: string;
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} /;
const CLIENT_PREFIX = /^(?:([^\s/]+)\/)?((?:\d{1,3}\.){3}\d{1,3}:\d{1,5}) (.*)$/;
const ADDR = /\[AF_INET6?\]([0-9a-fA-F:.]+:\d+|[0-9a-fA-F:.]+)/;

const RULES: readonly [OpenVpnLogKind, RegExp][] = [
  ['initialized', /^Initialization Sequence Completed/],
  ['hold-waiting', /^Need hold release from management interface/],
  ['options-error', /^Options error:/],
  ['bind-error', /Socket bind failed|Address already in use/],
  ['tun-error', /Cannot (?:open TUN\/TAP|ioctl TUNSETIFF)|ERROR: Cannot open TUN/],
  ['auth-failed', /AUTH_FAILED|Auth Username\/Password verification failed|client-deny/i],
  ['verify-error', /^VERIFY (?:ERROR|KU ERROR|EKU ERROR|X509NAME ERROR)|certificate verify failed/],
  ['tls-error', /^TLS Error:|^TLS_ERROR|TLS handshake failed|^OpenSSL: error/],
  ['tls-initial', /^TLS: Initial packet from/],
  ['peer-connected', /Peer Connection Initiated with/],
  ['tcp-connection', /^TCP connection established with/],
  ['exiting', /process exiting|^Exiting due to/],
  ['connection-reset', /Connection reset|client-instance (?:exiting|restarting)/],
  ['management', /^MANAGEMENT: /],
  ['fatal', /fatal error|^FATAL/i],
];

export function parseOpenVpnLogLine(raw: string): OpenVpnLogEvent {
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  let message = line.replace(TIMESTAMP, '');
  let remote: string | undefined;
  let commonName: string | undefined;
  const m = CLIENT_PREFIX.exec(message);
  if (m) {
    commonName = m[1];
    remote = m[2];
    message = m[3]!;
  }
  let kind: OpenVpnLogKind = 'other';
  for (const [k, re] of RULES) {
    if (re.test(message)) {
      kind = k;
      break;
    }
  }
  if (!remote && (kind === 'tcp-connection' || kind === 'tls-initial' || kind === 'peer-connected')) {
    const a = ADDR.exec(message);
    if (a) remote = a[1];
  }
  if (!commonName && kind === 'peer-connected') {
    const cn = /^\[([^\]]+)\] Peer Connection/.exec(message);
    if (cn) commonName = cn[1];
  }
  const event: { -readonly [K in keyof OpenVpnLogEvent]: OpenVpnLogEvent[K] } = { kind, message, line };
  if (remote !== undefined) event.remote = remote;
  if (commonName !== undefined) event.commonName = commonName;
  return event;
}
