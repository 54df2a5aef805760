/**
 * `npm run keys:rotate`: re-encrypts every stored secret (router passwords, tunnel secrets,
 * pending scripts, backups, job exports, TOTP secrets, the gateway CA key, the keyring check)
 * under the newest key of ENCRYPTION_KEYS / secrets.json, then retires key ids nothing uses
 * any more (ADR 0059). Give the new key first and keep the old ones until it finished:
 * `ENCRYPTION_KEYS=k2:<new>,k1:<old> npm run keys:rotate`. Interrupted, it is simply run
 * again (batches pick values not yet under the newest key). Runs as the table owner
 * (DATABASE_URL), like migrations; the api and workers may keep running.
 */
import 'reflect-metadata';
import { loadApiConfig, secretsFor, type ApiConfig } from '@backplane/config';
import { Keyring } from '@backplane/crypto';
import { createDataSource, rotateKeys, type RotationResult } from '@backplane/db';
import { runMain } from '@backplane/observability';

export async function rotateAllKeys(
  config: ApiConfig,
  log: (line: string) => void,
  opts: { batchSize?: number; signal?: AbortSignal } = {},
): Promise<RotationResult> {
  const keyring = new Keyring(secretsFor(config).encryptionKeys);
  const ds = createDataSource({ url: config.DATABASE_URL, poolSize: 2, applicationName: 'backplane-keys-rotate' });
  await ds.initialize();
  try {
    log(`re-encrypting every stored secret under key "${keyring.activeId}" (keys: ${keyring.keyIds.join(', ')})`);
    let last = '';
    const result = await rotateKeys(ds, keyring, {
      ...opts,
      onProgress: (p) => {
        const line = `${p.table}.${p.column}: ${p.done}/${p.total}`;
        if (line !== last) log(line);
        last = line;
      },
    });
    log(
      `done: ${result.rotated} values re-encrypted; ${result.retired.length ? `key ids no longer used: ${result.retired.join(', ')} (they may now be removed from the keyring)` : 'no key id retired'}`,
    );
    return result;
  } finally {
    await ds.destroy();
  }
}

if (require.main === module) {
  runMain('keys-rotate', async () => {
    await rotateAllKeys(loadApiConfig(), (line) => process.stdout.write(`${line}\n`));
  });
}
