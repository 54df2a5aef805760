import { Keyring, CryptoError } from '@backplane/crypto';
import type { DataSource } from 'typeorm';
import { KeyringCheckEntity } from './entities';
import { assertKeysAvailable } from './key-rotation';

const CONTEXT = 'keyring-check';
const PLAINTEXT = 'backplane-keyring-check-v1';

/** The configured keys cannot decrypt what this database holds. */
export class KeyringMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyringMismatchError';
  }
}

/**
 * On the first start, stores a value encrypted with the active key. On every later
 * start, decrypts it: a lost or replaced secrets.json (or a wrong ENCRYPTION_KEYS)
 * becomes one clear error naming the key the data needs, instead of failures deep
 * inside jobs. Also re-encrypts the check value when the active key changed, and refuses
 * to start when any stored value uses a key id the keyring lacks (`key_ids_in_use`, ADR 0059).
 */
export async function verifyKeyring(
  ds: DataSource,
  keyring: Keyring,
  hint: { secretsFile: string; generatedNow: boolean },
): Promise<'created' | 'verified'> {
  const repo = ds.getRepository(KeyringCheckEntity);
  const existing = await repo.findOneBy({ id: 1 });
  if (!existing) {
    const value = keyring.encrypt(PLAINTEXT, CONTEXT);
    await repo.createQueryBuilder().insert().values({ id: 1, keyId: keyring.activeId, value }).orIgnore().execute();
    await assertKeysAvailable(ds, keyring);
    return 'created';
  }
  try {
    if (keyring.decryptText(existing.value, CONTEXT) !== PLAINTEXT) throw new CryptoError('tampered', 'mismatch');
  } catch (err) {
    const needed = existing.keyId;
    const why =
      err instanceof CryptoError && err.code === 'unknown_key'
        ? `the database holds data encrypted with key "${needed}", which is not among the configured keys (${keyring.keyIds.join(', ')})`
        : `the configured key "${needed}" does not decrypt the data in the database`;
    const origin = hint.generatedNow
      ? ` ${hint.secretsFile} was just created because it was missing: the original was lost.`
      : '';
    throw new KeyringMismatchError(
      `Cannot start: ${why}.${origin} Restore the original secrets.json (or set ENCRYPTION_KEYS to include key "${needed}"). Refusing to continue so no credentials are lost.`,
    );
  }
  if (existing.keyId !== keyring.activeId) {
    await repo.update({ id: 1 }, { keyId: keyring.activeId, value: keyring.encrypt(PLAINTEXT, CONTEXT) });
  }
  // The check value proves the keys are right; this proves none is missing (issue 15 finding 7).
  await assertKeysAvailable(ds, keyring);
  return 'verified';
}
