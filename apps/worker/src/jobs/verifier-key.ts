import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The deployment's tunnel-verifier key, exactly as the api reads it: TUNNEL_VERIFIER_KEY,
 * or `<DATA_DIR>/tunnel-verifier.key` (created once, first writer wins). The worker needs
 * it to rotate tunnel secrets (recreate tunnel).
 */
export function loadVerifierKey(configured: string | undefined, dataDir: string): Buffer {
  if (configured) return Buffer.from(configured, 'utf8');
  const file = join(dataDir, 'tunnel-verifier.key');
  try {
    return Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8');
  } catch {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
    try {
      linkSync(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      unlinkSync(tmp);
    }
    return Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8');
  }
}
