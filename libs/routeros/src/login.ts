import { createHash } from 'node:crypto';

/**
 * Response to the pre-6.43 login challenge: `00` + hex(md5(0x00 + password + challenge bytes)).
 * Vector (protocols.md): password `passTest`, challenge `abc123` -> `0021277bff9ac7caf06aa608e46616d47f`.
 */
export function challengeResponse(password: string, challengeHex: string): string {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(challengeHex)) throw new TypeError('login challenge is not hex');
  const md5 = createHash('md5');
  md5.update(Buffer.from([0]));
  md5.update(Buffer.from(password, 'utf8'));
  md5.update(Buffer.from(challengeHex, 'hex'));
  return `00${md5.digest('hex')}`;
}
