import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSecrets, loadTunnelVerifierKey, SecretsError } from './secrets';

const dir = () => mkdtempSync(join(tmpdir(), 'bp-secrets-'));

describe('secrets bootstrap', () => {
  it('generates secrets.json with mode 0600 on first start and reuses it afterwards', () => {
    const d = dir();
    const first = loadSecrets({ dataDir: d });
    expect(first.generated).toBe(true);
    expect(statSync(join(d, 'secrets.json')).mode & 0o777).toBe(0o600);
    expect(first.encryptionKeys[0]!.key).toHaveLength(32);
    expect(first.jwtSigningKey.length).toBeGreaterThanOrEqual(32);
    const second = loadSecrets({ dataDir: d });
    expect(second.generated).toBe(false);
    expect(second.jwtSigningKey).toBe(first.jwtSigningKey);
    expect(second.encryptionKeys[0]!.key.equals(first.encryptionKeys[0]!.key)).toBe(true);
  });

  it('lets environment variables override the file', () => {
    const key = randomBytes(32).toString('base64');
    const s = loadSecrets({ dataDir: dir(), jwtSigningKey: 'x'.repeat(40), encryptionKeys: `prod1:${key},old:${key}` });
    expect(s.source).toEqual({ jwt: 'env', encryption: 'env' });
    expect(s.encryptionKeys.map((k) => k.id)).toEqual(['prod1', 'old']);
    expect(() => loadSecrets({ dataDir: dir(), jwtSigningKey: 'x'.repeat(40), encryptionKeys: 'a:AAAA' })).toThrow();
  });

  it('refuses a corrupt file with one clear message and does not overwrite it', () => {
    const d = dir();
    loadSecrets({ dataDir: d });
    const file = join(d, 'secrets.json');
    writeFileSync(file, '{"version":1, "jwtSig');
    expect(() => loadSecrets({ dataDir: d })).toThrow(SecretsError);
    expect(() => loadSecrets({ dataDir: d })).toThrow(/corrupt .*Restore it from your backup/);
    expect(readFileSync(file, 'utf8')).toBe('{"version":1, "jwtSig');
    writeFileSync(file, JSON.stringify({ version: 1, createdAt: 'x', jwtSigningKey: 'short', encryptionKeys: [] }));
    expect(() => loadSecrets({ dataDir: d })).toThrow(/corrupt \(jwtSigningKey/);
  });

  it('tightens a file left world-readable', () => {
    const d = dir();
    loadSecrets({ dataDir: d });
    const file = join(d, 'secrets.json');
    chmodSync(file, 0o644);
    loadSecrets({ dataDir: d });
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('ends with one set of secrets when processes start together', async () => {
    const d = dir();
    const results = await Promise.all(
      Array.from({ length: 8 }, () => Promise.resolve().then(() => loadSecrets({ dataDir: d }))),
    );
    expect(new Set(results.map((r) => r.jwtSigningKey)).size).toBe(1);
    expect(results.filter((r) => r.generated)).toHaveLength(1);
  });
});

describe('tunnel-verifier key', () => {
  it('is created once with mode 0600, reused afterwards, and overridden by TUNNEL_VERIFIER_KEY', () => {
    const d = dir();
    const first = loadTunnelVerifierKey(undefined, d);
    expect(statSync(join(d, 'tunnel-verifier.key')).mode & 0o777).toBe(0o600);
    expect(loadTunnelVerifierKey(undefined, d).equals(first)).toBe(true);
    expect(loadTunnelVerifierKey('configured', d).toString()).toBe('configured');
  });
});
