/**
 * Host-key pinning for SSH (trust on first use): the first key seen for `host:port` is
 * stored; a different key later is refused with both fingerprints in the error. The store
 * is pluggable (memory for tests, a JSON file, or the database in the product).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { RouterOsError } from '../errors';

export interface HostKeyStore {
  /** The pinned fingerprint (`SHA256:...`) of `host:port`, if any. */
  get(hostPort: string): Promise<string | undefined>;
  /** Pins a fingerprint (only called when none is stored). */
  set(hostPort: string, fingerprint: string): Promise<void>;
}

export class MemoryHostKeyStore implements HostKeyStore {
  private readonly keys = new Map<string, string>();
  get(hostPort: string): Promise<string | undefined> {
    return Promise.resolve(this.keys.get(hostPort));
  }
  set(hostPort: string, fingerprint: string): Promise<void> {
    this.keys.set(hostPort, fingerprint);
    return Promise.resolve();
  }
}

/** `{ "host:port": "SHA256:..." }` in a JSON file (mode 0600), replaced atomically on change. */
export class FileHostKeyStore implements HostKeyStore {
  private writing = Promise.resolve();
  constructor(readonly path: string) {}

  private async load(): Promise<Record<string, string>> {
    try {
      const parsed = JSON.parse(await readFile(this.path, 'utf8')) as unknown;
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        throw new RouterOsError(`host key store ${this.path} is not a JSON object`);
      }
      return parsed as Record<string, string>;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return {};
      throw err;
    }
  }

  async get(hostPort: string): Promise<string | undefined> {
    await this.writing;
    return (await this.load())[hostPort];
  }

  set(hostPort: string, fingerprint: string): Promise<void> {
    const next = this.writing.then(async () => {
      const all = await this.load();
      all[hostPort] = fingerprint;
      await mkdir(dirname(this.path), { recursive: true });
      const tmp = `${this.path}.${process.pid}.tmp`;
      await writeFile(tmp, `${JSON.stringify(all, null, 2)}\n`, { mode: 0o600 });
      await rename(tmp, this.path);
    });
    this.writing = next.catch(() => undefined);
    return next;
  }
}

/** The router presented a host key other than the pinned one: possibly someone in between. */
export class RouterOsHostKeyError extends RouterOsError {
  constructor(
    readonly hostPort: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(
      `SSH host key of ${hostPort} CHANGED: pinned ${expected}, presented ${actual}. ` +
        'Refusing to connect (a man-in-the-middle, or the router was reset/replaced: re-pin deliberately).',
    );
  }
}

/** `SHA256:<base64>` of an SSH public key blob, as OpenSSH prints it. */
export function sshKeyFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}
