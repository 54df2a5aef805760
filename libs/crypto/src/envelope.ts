import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** A data-encryption key with the id written into every value it encrypts. */
export interface KeyMaterial {
  readonly id: string;
  readonly key: Buffer;
}

export type CryptoErrorCode = 'unknown_key' | 'malformed' | 'tampered' | 'bad_key';

export class CryptoError extends Error {
  constructor(
    readonly code: CryptoErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CryptoError';
  }
}

const VERSION = 'bp1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * AES-256-GCM envelope: `bp1:<keyId>:<base64url(iv ‖ ciphertext ‖ tag)>`.
 * A fresh 96-bit random IV per value; the version and key id are authenticated as AAD
 * together with the caller's context (e.g. `site:<uuid>:router-password`), so a value
 * cannot be moved to another row or relabelled with another key id undetected.
 */
export class Keyring {
  private readonly byId: ReadonlyMap<string, Buffer>;
  readonly activeId: string;

  constructor(keys: readonly KeyMaterial[]) {
    if (keys.length === 0) throw new CryptoError('bad_key', 'a keyring needs at least one key');
    const map = new Map<string, Buffer>();
    for (const k of keys) {
      if (!KEY_ID.test(k.id)) throw new CryptoError('bad_key', `invalid key id "${k.id}"`);
      if (k.key.length !== 32) throw new CryptoError('bad_key', `key "${k.id}" must be 32 bytes`);
      if (map.has(k.id)) throw new CryptoError('bad_key', `duplicate key id "${k.id}"`);
      map.set(k.id, Buffer.from(k.key));
    }
    this.byId = map;
    this.activeId = keys[0]!.id;
  }

  get keyIds(): string[] {
    return [...this.byId.keys()];
  }

  encrypt(plaintext: string | Buffer, context = ''): string {
    const key = this.byId.get(this.activeId)!;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad(this.activeId, context));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return `${VERSION}:${this.activeId}:${Buffer.concat([iv, body]).toString('base64url')}`;
  }

  decrypt(envelope: string, context = ''): Buffer {
    const { keyId, payload } = parse(envelope);
    const key = this.byId.get(keyId);
    if (!key) throw new CryptoError('unknown_key', `value was encrypted with key "${keyId}", which is not configured`);
    if (payload.length < IV_BYTES + TAG_BYTES) throw new CryptoError('malformed', 'encrypted value is truncated');
    const iv = payload.subarray(0, IV_BYTES);
    const tag = payload.subarray(payload.length - TAG_BYTES);
    const body = payload.subarray(IV_BYTES, payload.length - TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad(keyId, context));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(body), decipher.final()]);
    } catch {
      throw new CryptoError('tampered', 'encrypted value failed authentication (tampered, wrong key or wrong context)');
    }
  }

  decryptText(envelope: string, context = ''): string {
    return this.decrypt(envelope, context).toString('utf8');
  }

  /** The key id an envelope names, without decrypting it. */
  keyIdOf(envelope: string): string {
    return parse(envelope).keyId;
  }

  needsRotation(envelope: string): boolean {
    return this.keyIdOf(envelope) !== this.activeId;
  }

  /** Re-encrypts with the active key; returns the same string when it already uses it. */
  rotate(envelope: string, context = ''): string {
    if (!this.needsRotation(envelope)) return envelope;
    return this.encrypt(this.decrypt(envelope, context), context);
  }
}

function aad(keyId: string, context: string): Buffer {
  return Buffer.from(`${VERSION}\0${keyId}\0${context}`, 'utf8');
}

function parse(envelope: string): { keyId: string; payload: Buffer } {
  const first = envelope.indexOf(':');
  const second = envelope.indexOf(':', first + 1);
  if (first < 0 || second < 0 || envelope.slice(0, first) !== VERSION) {
    throw new CryptoError('malformed', 'not a Backplane encrypted value');
  }
  const keyId = envelope.slice(first + 1, second);
  const body = envelope.slice(second + 1);
  if (!KEY_ID.test(keyId) || !/^[A-Za-z0-9_-]*$/.test(body)) {
    throw new CryptoError('malformed', 'not a Backplane encrypted value');
  }
  return { keyId, payload: Buffer.from(body, 'base64url') };
}
