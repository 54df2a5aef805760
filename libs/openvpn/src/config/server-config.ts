import { isIPv4 } from 'node:net';

/**
 * The gateway's OpenVPN 2.6 server configuration. The `server` helper refuses a /10, so
 * its expansion is written out (`mode server`, `tls-server`, `topology subnet`,
 * `ifconfig`, pushes); every client's address comes from the management interface's
 * `client-auth` answer (`ifconfig-push <addr> 255.192.0.0`), there is no pool.
 * Clients authenticate with user/password only (`verify-client-cert none`,
 * `username-as-common-name`, `management-client-auth`), and the server starts held
 * (`management-hold`) so no CONNECT is announced before the gateway listens.
 */

export interface ServerConfigOptions {
  /** TCP port (default 8443). */
  readonly port?: number;
  /** Local address to bind (default: all). */
  readonly local?: string;
  /** `tun` or a fixed name like `bp-tun0` (default `tun`). */
  readonly dev?: string;
  /** Gateway side of every tunnel (default 100.64.0.1). */
  readonly gatewayAddress?: string;
  /** Netmask of the tunnel network (default 255.192.0.0, the /10). */
  readonly netmask?: string;

  readonly caPath: string;
  readonly certPath: string;
  readonly keyPath: string;
  /** A `dh` file (wins over `dh`). */
  readonly dhPath?: string;
  /**
   * Key exchange when no `dhPath` is given: `ffdhe2048` (default) inlines RFC 7919's group so
   * DHE is offered next to ECDHE — RouterOS 6 clients may offer only DHE suites
   * (docs/adr/0064-routeros6-tls.md); `none` offers ECDHE only.
   */
  readonly dh?: 'ffdhe2048' | 'none';
  readonly crlPath?: string;

  readonly managementSocketPath: string;
  readonly managementPasswordFile: string;

  readonly dataCiphers?: readonly string[];
  readonly dataCiphersFallback?: string;
  /** HMAC digest for CBC ciphers (default SHA1: RouterOS 6). */
  readonly auth?: string;
  /** TLS floor of the control channel (default 1.2, what RouterOS 6.4x+ offers: docs/adr/0064-routeros6-tls.md). */
  readonly tlsVersionMin?: '1.0' | '1.1' | '1.2' | '1.3';
  /** `keepalive <interval> <timeout>` seconds (default 10 60). */
  readonly keepalive?: readonly [number, number];
  /** Default 10000 (openvpn's own default is 1024). */
  readonly maxClients?: number;
  /** Seconds a client may take to be authorised (default 30; openvpn's default is 60). */
  readonly handWindow?: number;
  /** `reneg-sec`: seconds between TLS renegotiations (default 3600, openvpn's own; 0 = never). */
  readonly renegSeconds?: number;
  readonly verb?: number;
  /** Drop privileges after start (both or neither). */
  readonly user?: string;
  readonly group?: string;
  /** Optional status file rewritten every `statusIntervalSeconds`. */
  readonly statusPath?: string;
  readonly statusIntervalSeconds?: number;
}

export class ServerConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServerConfigError';
  }
}

/**
 * RFC 7919's ffdhe2048 group as an OpenSSL `DH PARAMETERS` PEM: a well-known, safe `dh`
 * group for offering DHE key exchange next to ECDHE (the default, inlined: RouterOS 6
 * clients may offer only DHE suites, docs/adr/0064-routeros6-tls.md). No generation needed.
 */
export const FFDHE2048_DH_PARAMS_PEM = `-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
`;

export const DEFAULT_DATA_CIPHERS = ['AES-256-GCM', 'AES-128-GCM', 'AES-256-CBC', 'AES-128-CBC'] as const;

/** A config value that cannot break out of its directive: no whitespace, quotes, comments or control characters. */
function token(what: string, value: string): string {
  if (typeof value !== 'string' || value === '') throw new ServerConfigError(`${what} must be a non-empty string`);
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  if (/[\s"'\\#;\0-\x1f\x7f]/.test(value))
    throw new ServerConfigError(
      `${what} must not contain whitespace, quotes, backslashes, '#', ';' or control characters`,
    );
  return value;
}

function path(what: string, value: string): string {
  token(what, value);
  if (!value.startsWith('/')) throw new ServerConfigError(`${what} must be an absolute path`);
  return value;
}

function int(what: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max)
    throw new ServerConfigError(`${what} must be an integer between ${min} and ${max}`);
  return value;
}

function ipv4(what: string, value: string): string {
  if (!isIPv4(value)) throw new ServerConfigError(`${what} must be an IPv4 address`);
  return value;
}

function netmask(value: string): string {
  ipv4('netmask', value);
  const n = value.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const inv = 0xffffffff - n;
  if ((inv & (inv + 1)) !== 0) throw new ServerConfigError('netmask must be contiguous');
  return value;
}

function cipher(what: string, value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9-]{1,40}$/.test(value)) throw new ServerConfigError(`${what} is not a cipher name`);
  return value;
}

/** Renders the server config; throws ServerConfigError on any value that does not fit. */
export function renderServerConfig(o: ServerConfigOptions): string {
  const port = int('port', o.port ?? 8443, 1, 65535);
  const gw = ipv4('gatewayAddress', o.gatewayAddress ?? '100.64.0.1');
  const mask = netmask(o.netmask ?? '255.192.0.0');
  const ciphers = (o.dataCiphers ?? DEFAULT_DATA_CIPHERS).map((c) => cipher('data cipher', c));
  if (ciphers.length === 0) throw new ServerConfigError('dataCiphers must not be empty');
  const fallback = cipher('dataCiphersFallback', o.dataCiphersFallback ?? 'AES-256-CBC');
  const auth = cipher('auth', o.auth ?? 'SHA1');
  const tlsMin = o.tlsVersionMin ?? '1.2';
  if (!['1.0', '1.1', '1.2', '1.3'].includes(tlsMin)) throw new ServerConfigError('tlsVersionMin must be 1.0-1.3');
  const [kaInterval, kaTimeout] = o.keepalive ?? [10, 60];
  int('keepalive interval', kaInterval, 1, 3600);
  int('keepalive timeout', kaTimeout, 2, 7200);
  if (kaTimeout <= kaInterval) throw new ServerConfigError('keepalive timeout must exceed the interval');
  if ((o.user === undefined) !== (o.group === undefined))
    throw new ServerConfigError('set both user and group, or neither');

  const lines: string[] = [
    '# Rendered by @backplane/openvpn. Do not edit: the gateway rewrites it.',
    'mode server',
    'tls-server',
    'proto tcp-server',
    `port ${port}`,
  ];
  if (o.local !== undefined) lines.push(`local ${ipv4('local', o.local)}`);
  lines.push(
    `dev ${token('dev', o.dev ?? 'tun')}`,
    'dev-type tun',
    'topology subnet',
    `ifconfig ${gw} ${mask}`,
    'push "topology subnet"',
    `push "route-gateway ${gw}"`,
    '',
    `ca ${path('caPath', o.caPath)}`,
    `cert ${path('certPath', o.certPath)}`,
    `key ${path('keyPath', o.keyPath)}`,
  );
  if (o.dhPath !== undefined) lines.push(`dh ${path('dhPath', o.dhPath)}`);
  else if ((o.dh ?? 'ffdhe2048') === 'none') lines.push('dh none');
  else if (o.dh === undefined || o.dh === 'ffdhe2048') lines.push('<dh>', FFDHE2048_DH_PARAMS_PEM.trimEnd(), '</dh>');
  else throw new ServerConfigError('dh must be ffdhe2048 or none');
  if (o.crlPath !== undefined) lines.push(`crl-verify ${path('crlPath', o.crlPath)}`);
  lines.push(
    `tls-version-min ${tlsMin}`,
    `data-ciphers ${ciphers.join(':')}`,
    `data-ciphers-fallback ${fallback}`,
    `auth ${auth}`,
    'allow-compression no',
    '',
    'verify-client-cert none',
    'username-as-common-name',
    `management ${path('managementSocketPath', o.managementSocketPath)} unix ${path('managementPasswordFile', o.managementPasswordFile)}`,
    'management-client-auth',
    'management-hold',
    '',
    `keepalive ${kaInterval} ${kaTimeout}`,
    `max-clients ${int('maxClients', o.maxClients ?? 10_000, 1, 1_000_000)}`,
    `hand-window ${int('handWindow', o.handWindow ?? 30, 5, 600)}`,
    `reneg-sec ${int('renegSeconds', o.renegSeconds ?? 3600, 0, 604_800)}`,
    'persist-key',
    `verb ${int('verb', o.verb ?? 3, 0, 11)}`,
  );
  if (o.user !== undefined && o.group !== undefined)
    lines.push(`user ${token('user', o.user)}`, `group ${token('group', o.group)}`);
  if (o.statusPath !== undefined)
    lines.push(
      `status ${path('statusPath', o.statusPath)} ${int('statusIntervalSeconds', o.statusIntervalSeconds ?? 10, 1, 3600)}`,
      'status-version 3',
    );
  return lines.join('\n') + '\n';
}

/** The management password file's content: the password on one line. */
export function renderManagementPasswordFile(password: string): string {
  if (!password || /[\r\n\0]/.test(password))
    throw new ServerConfigError('management password must be one non-empty line');
  return `${password}\n`;
}
