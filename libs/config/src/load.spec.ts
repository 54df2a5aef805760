import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadApiConfig, loadGatewayConfig } from './apps';
import { ConfigError, parseVars, secretNames } from './load';

const base = { DATABASE_URL: 'postgres://u:pw@db:5432/bp', REDIS_URL: 'redis://cache:6379' };

describe('configuration', () => {
  it('applies defaults and coerces types', () => {
    const cfg = loadApiConfig(base);
    expect(cfg.API_PORT).toBe(3000);
    expect(cfg.MIGRATIONS_RUN).toBe(true);
    expect(loadApiConfig({ ...base, API_PORT: '8080', MIGRATIONS_RUN: 'false' })).toMatchObject({
      API_PORT: 8080,
      MIGRATIONS_RUN: false,
    });
  });

  it('fails fast naming every bad variable and why', () => {
    let error: unknown;
    try {
      loadApiConfig({ REDIS_URL: 'http://nope', API_PORT: '99999' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toMatch(/DATABASE_URL: is required/);
    expect(message).toMatch(/REDIS_URL: .*redis:\/\//);
    expect(message).toMatch(/API_PORT \(got "99999"\)/);
  });

  it('never echoes a secret value in an error', () => {
    expect(() => loadApiConfig({ ...base, DATABASE_URL: 'mysql://root:hunter2@x/db' })).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('hunter2') }),
    );
  });

  it('reads secrets from NAME_FILE and refuses both forms or a missing file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bp-cfg-'));
    const file = join(dir, 'db-url');
    writeFileSync(file, 'postgres://u:from-file@db/bp\n');
    const { DATABASE_URL: _ignored, ...rest } = base;
    expect(loadApiConfig({ ...rest, DATABASE_URL_FILE: file }).DATABASE_URL).toBe('postgres://u:from-file@db/bp');
    expect(() => loadApiConfig({ ...base, DATABASE_URL_FILE: file })).toThrow(/both set/);
    expect(() => loadApiConfig({ ...rest, DATABASE_URL_FILE: join(dir, 'missing') })).toThrow(/cannot read .*ENOENT/);
    expect(() => parseVars(['API_PORT'], { API_PORT_FILE: file })).toThrow(/only secrets/);
  });

  it('flags secrets for redaction', () => {
    expect(secretNames()).toEqual(expect.arrayContaining(['DATABASE_URL', 'JWT_SIGNING_KEY', 'ENCRYPTION_KEYS']));
    expect(secretNames()).not.toContain('API_PORT');
  });

  it('gives the gateway no database access', () => {
    expect(loadGatewayConfig({ REDIS_URL: 'redis://x' })).not.toHaveProperty('DATABASE_URL');
  });
});
