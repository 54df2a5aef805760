/**
 * `.backup` files. Real ones are a binary container (little-endian magic 0xB1A1AC88 +
 * length, or 0x7291A8EF + salt for an encrypted one; see marcograss/routerosbackuptools);
 * the simulator keeps that framing and puts its own configuration snapshot inside, so a
 * backup is opaque bytes to a client, like on a router, and only this router reads it back.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { ConfigSnapshot } from './state';

const PLAIN = 0xb1a1ac88;
const ENCRYPTED = 0x7291a8ef;

function key(salt: Buffer, password: string): Buffer {
  return createHash('sha256').update(salt).update(password, 'utf8').digest();
}

/** The file bytes (as a latin1 string, how /file stores binary contents). */
export function encodeBackup(snap: ConfigSnapshot, password: string | undefined): string {
  const body = Buffer.from(JSON.stringify(snap), 'utf8');
  if (!password) {
    const head = Buffer.alloc(8);
    head.writeUInt32LE(PLAIN, 0);
    head.writeUInt32LE(body.length + 8, 4);
    return Buffer.concat([head, body]).toString('latin1');
  }
  const salt = randomBytes(32);
  const iv = salt.subarray(0, 16);
  const cipher = createCipheriv('aes-256-ctr', key(salt, password), iv);
  const check = Buffer.alloc(4);
  check.writeUInt32LE(PLAIN, 0);
  const enc = Buffer.concat([cipher.update(check), cipher.update(body), cipher.final()]);
  const head = Buffer.alloc(8);
  head.writeUInt32LE(ENCRYPTED, 0);
  head.writeUInt32LE(enc.length + 40, 4);
  return Buffer.concat([head, salt, enc]).toString('latin1');
}

export type DecodeResult =
  | { readonly ok: true; readonly snapshot: ConfigSnapshot }
  | { readonly ok: false; readonly reason: 'not-backup' | 'password' };

export function decodeBackup(contents: string, password: string | undefined): DecodeResult {
  const bytes = Buffer.from(contents, 'latin1');
  if (bytes.length < 8) return { ok: false, reason: 'not-backup' };
  const magic = bytes.readUInt32LE(0);
  let body: Buffer;
  if (magic === PLAIN) {
    body = bytes.subarray(8);
  } else if (magic === ENCRYPTED && bytes.length >= 44) {
    const salt = bytes.subarray(8, 40);
    const decipher = createDecipheriv('aes-256-ctr', key(salt, password ?? ''), salt.subarray(0, 16));
    const plain = Buffer.concat([decipher.update(bytes.subarray(40)), decipher.final()]);
    if (plain.readUInt32LE(0) !== PLAIN) return { ok: false, reason: 'password' };
    body = plain.subarray(4);
  } else {
    return { ok: false, reason: 'not-backup' };
  }
  try {
    return { ok: true, snapshot: JSON.parse(body.toString('utf8')) as ConfigSnapshot };
  } catch {
    return { ok: false, reason: 'not-backup' };
  }
}
