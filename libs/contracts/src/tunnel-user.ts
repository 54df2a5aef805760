/**
 * A site's OpenVPN user name. RouterOS limits the ovpn-client `user` to 27 characters and
 * a v4 UUID is 36, so the user is the UUID's 16 bytes as lowercase RFC 4648 base32 without
 * padding: exactly 26 characters, reversible, and different for every site.
 */
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const USER = /^[a-z2-7]{25}[aeimquy4]$/;

export const TUNNEL_USER_LENGTH = 26;

export class TunnelUserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TunnelUserError';
  }
}

/** `0b6c...-...` -> 26 lowercase base32 characters. Throws on anything but a UUID. */
export function siteIdToTunnelUser(siteId: string): string {
  if (!UUID.test(siteId)) throw new TunnelUserError('site id must be a UUID');
  const bytes = Buffer.from(siteId.replace(/-/g, ''), 'hex');
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET.charAt((value >>> (bits - 5)) & 31);
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET.charAt((value << (5 - bits)) & 31);
  return out;
}

/**
 * The inverse: the site id (lowercase UUID), or undefined for anything that is not a
 * canonical encoding (wrong length or alphabet, non-zero padding bits). Never throws:
 * the input comes from whoever dials the gateway.
 */
export function tunnelUserToSiteId(user: string): string | undefined {
  if (typeof user !== 'string' || user.length !== TUNNEL_USER_LENGTH || !USER.test(user)) return undefined;
  const bytes = Buffer.alloc(16);
  let bits = 0;
  let value = 0;
  let i = 0;
  for (const ch of user) {
    value = (value << 5) | ALPHABET.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      bytes[i++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
      value &= (1 << bits) - 1;
    }
  }
  if (value !== 0) return undefined; // the 2 padding bits must be zero (canonical form)
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
