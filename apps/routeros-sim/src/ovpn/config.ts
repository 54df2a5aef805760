/**
 * What a RouterOS ovpn-client would run, as an openvpn 2.6 client configuration
 * (docs/protocols.md §3): tcp-client/udp, tun (mode=ip) or tap (ethernet), RouterOS cipher
 * and auth names mapped to OpenSSL's, user/password from a file, the router's trusted
 * certificates as CA, no compression, nobind, no persist-tun.
 */

/** RouterOS cipher names (v7 and the pre-7.8 spelling) -> OpenVPN's. */
export const CIPHERS: Readonly<Record<string, string>> = {
  'aes128-cbc': 'AES-128-CBC',
  'aes192-cbc': 'AES-192-CBC',
  'aes256-cbc': 'AES-256-CBC',
  aes128: 'AES-128-CBC',
  aes192: 'AES-192-CBC',
  aes256: 'AES-256-CBC',
  'aes128-gcm': 'AES-128-GCM',
  'aes192-gcm': 'AES-192-GCM',
  'aes256-gcm': 'AES-256-GCM',
  blowfish128: 'BF-CBC',
  null: 'none',
};

export const AUTHS: Readonly<Record<string, string>> = {
  md5: 'MD5',
  sha1: 'SHA1',
  sha256: 'SHA256',
  sha512: 'SHA512',
  null: 'none',
};

export interface OvpnClientFiles {
  /** auth-user-pass file (user, password; mode 0600). */
  readonly authFile: string;
  /** Trusted CA certificates (PEM); undefined when the router has none. */
  readonly caFile: string | undefined;
}

/** Lines of the openvpn configuration for an ovpn-client's stored values. */
export function renderOvpnClientConfig(values: Readonly<Record<string, string>>, files: OvpnClientFiles): string[] {
  const cipher = CIPHERS[values['cipher'] ?? 'aes256-cbc'] ?? 'AES-256-CBC';
  const auth = AUTHS[values['auth'] ?? 'sha1'] ?? 'SHA1';
  const lines = [
    'client',
    values['mode'] === 'ethernet' ? 'dev tap' : 'dev tun',
    values['protocol'] === 'udp' ? 'proto udp' : 'proto tcp-client',
    `remote ${values['connect-to'] ?? ''} ${values['port'] ?? '1194'}`,
    'nobind',
    // RouterOS proposes exactly its configured cipher (no negotiation list on v6).
    `cipher ${cipher}`,
    `data-ciphers ${cipher}`,
    `auth ${auth}`,
    `auth-user-pass ${files.authFile}`,
    // A router retries on its own; wrong credentials are retried too.
    'auth-retry nointeract',
    'connect-retry 2 10',
    'resolv-retry infinite',
    'verb 3',
  ];
  if (files.caFile) lines.push(`ca ${files.caFile}`);
  if (values['verify-server-certificate'] === 'true') lines.push('remote-cert-tls server');
  if (values['tls-version'] === 'only-1.2') lines.push('tls-version-min 1.2', 'tls-version-max 1.2');
  if (values['route-nopull'] === 'true') lines.push('route-nopull');
  if (values['add-default-route'] === 'true') lines.push('redirect-gateway def1');
  const mtu = values['max-mtu'];
  if (mtu && mtu !== '1500') lines.push(`tun-mtu ${mtu}`);
  return lines;
}
