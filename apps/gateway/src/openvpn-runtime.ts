import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  certificateMatchesKey,
  createCertificateRequest,
  FakeOpenVpnServer,
  ManagementClient,
  OpenVpnSupervisor,
  renderManagementPasswordFile,
  renderServerConfig,
  verifyIssuedBy,
} from '@backplane/openvpn';
import type { CertificateBundle } from '@backplane/gateway-link';
import type { Logger } from 'pino';
import { z } from 'zod';

export interface OpenVpnRuntime {
  readonly mode: 'real' | 'fake';
  readonly management: ManagementClient;
  /** Fake mode: the fake server (scale tests drive simulated tunnels through it). */
  readonly fake?: unknown;
  /** Real mode: the supervisor (pid, restarts). */
  readonly supervisor?: OpenVpnSupervisor;
  stop(): Promise<void>;
}

/** What a real openvpn needs on this machine; empty when everything is there. */
export function missingForRealOpenVpn(): string[] {
  const missing: string[] = [];
  if (typeof process.getuid === 'function' && process.getuid() !== 0) missing.push('root');
  if (!existsSync('/dev/net/tun')) missing.push('/dev/net/tun');
  if (spawnSync('openvpn', ['--version'], { stdio: 'ignore' }).status === null) missing.push('openvpn');
  return missing;
}

/** Where the runtime keeps openvpn's files (config, PKI material, management socket). */
export function runtimeDir(dataDir: string): string {
  return join(dataDir, 'gateway', 'openvpn');
}

/** The control plane's side of the PKI, as the gateway sees it (the link client). */
export interface CertificateSource {
  certificate(csrPem: string): Promise<CertificateBundle>;
  crl(): Promise<string>;
}

/** `pki.json` next to the certificate files (parsed when read back: a broken file means "none"). */
const PkiMeta = z.object({ serialNumber: z.string(), notAfter: z.string(), source: z.literal('control-plane') });
type PkiMeta = z.infer<typeof PkiMeta>;

const DAY = 86_400_000;

function writeAtomic(file: string, data: string, mode = 0o644): void {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, file);
}

/**
 * The gateway's server certificate, from the control plane's deployment CA (ADR 0021): the
 * key is generated here and never leaves the runtime directory; a CSR goes to the control
 * plane with the gateway credential; the certificate, the CA chain and the CRL come back.
 * Renewed when it nears expiry; the CRL is refreshed on every heartbeat.
 */
export class GatewayPki {
  readonly caPath: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly crlPath: string;
  private readonly metaPath: string;

  constructor(
    private readonly o: {
      readonly dataDir: string;
      readonly commonName: string;
      readonly source: CertificateSource;
      readonly logger: Logger;
      /** Renew when less than this is left (default 30 days). */
      readonly renewBeforeMs?: number;
    },
  ) {
    const dir = runtimeDir(o.dataDir);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.caPath = join(dir, 'ca.pem');
    this.certPath = join(dir, 'server.pem');
    this.keyPath = join(dir, 'server.key');
    this.crlPath = join(dir, 'crl.pem');
    this.metaPath = join(dir, 'pki.json');
  }

  /** The stored certificate's facts, when it came from the control plane and its files are all there. */
  current(): PkiMeta | undefined {
    try {
      const meta = PkiMeta.safeParse(JSON.parse(readFileSync(this.metaPath, 'utf8')));
      if (!meta.success) return undefined;
      for (const f of [this.caPath, this.certPath, this.keyPath, this.crlPath]) if (!existsSync(f)) return undefined;
      return meta.data;
    } catch {
      return undefined;
    }
  }

  private dueForRenewal(meta: PkiMeta | undefined): boolean {
    return !meta || Date.parse(meta.notAfter) - Date.now() < (this.o.renewBeforeMs ?? 30 * DAY);
  }

  /** At start: a certificate that is there and not near expiry is kept (CRL refreshed); otherwise a new one. */
  async ensure(): Promise<'issued' | 'kept'> {
    const meta = this.current();
    if (!this.dueForRenewal(meta)) {
      await this.refreshCrl().catch((err: unknown) =>
        this.o.logger.warn({ err }, 'CRL refresh failed; keeping the stored one'),
      );
      return 'kept';
    }
    await this.request();
    return 'issued';
  }

  /** On heartbeat: renews a certificate near expiry (true when renewed), else refreshes the CRL. */
  async refresh(): Promise<boolean> {
    if (this.dueForRenewal(this.current())) {
      await this.request();
      return true;
    }
    await this.refreshCrl();
    return false;
  }

  private async refreshCrl(): Promise<void> {
    const crl = await this.o.source.crl();
    if (!crl.includes('-----BEGIN X509 CRL-----'))
      throw new Error('the control plane answered something that is not a CRL');
    let old = '';
    try {
      old = readFileSync(this.crlPath, 'utf8');
    } catch {
      // first one
    }
    // openvpn re-reads a crl-verify file whose modification time changed
    if (old !== crl) writeAtomic(this.crlPath, crl);
  }

  private async request(): Promise<void> {
    const csr = await createCertificateRequest({ commonName: this.o.commonName });
    const bundle = await this.o.source.certificate(csr.csrPem);
    if (!(await certificateMatchesKey(bundle.certificatePem, csr.privateKeyPem)))
      throw new Error('the control plane returned a certificate for another key');
    if (!(await verifyIssuedBy(bundle.certificatePem, bundle.caPem)))
      throw new Error('the control plane returned a certificate its CA did not sign');
    writeAtomic(this.keyPath, csr.privateKeyPem, 0o600);
    writeAtomic(this.certPath, bundle.certificatePem);
    writeAtomic(this.caPath, bundle.caPem);
    writeAtomic(this.crlPath, bundle.crlPem);
    const meta: PkiMeta = { serialNumber: bundle.serialNumber, notAfter: bundle.notAfter, source: 'control-plane' };
    writeAtomic(this.metaPath, JSON.stringify(meta));
    // The CA routers must trust, where local tools (and the dev stack) look for it; GET /o/ca.crt serves the same.
    mkdirSync(join(this.o.dataDir, 'pki'), { recursive: true, mode: 0o700 });
    writeAtomic(join(this.o.dataDir, 'pki', 'ca.pem'), bundle.caPem);
    this.o.logger.info(
      { serialNumber: bundle.serialNumber, notAfter: bundle.notAfter },
      'server certificate issued by the control plane',
    );
  }
}

/**
 * An openvpn left running by a gateway that died hard (SIGKILL, OOM) still holds the port
 * and its tunnels, but nobody manages it: stop it before starting ours.
 */
async function killLeftover(pidFile: string, logger: Logger): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  const alive = (): boolean => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'openvpn';
    } catch {
      return false;
    }
  };
  if (!Number.isSafeInteger(pid) || pid <= 1 || !alive()) return;
  logger.warn({ pid }, 'stopping an openvpn left over from an earlier gateway run');
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
  if (alive()) process.kill(pid, 'SIGKILL');
}

export interface RuntimeOptions {
  readonly dataDir: string;
  /** Real mode: the server certificate, key, CA and CRL (from the control plane). */
  readonly pki?: GatewayPki;
  readonly name: string;
  readonly port: number;
  readonly logger: Logger;
  readonly mode: 'real' | 'fake';
  readonly bytecountSeconds?: number;
  /** Real mode: prefix the openvpn command (e.g. `ip netns exec gw`). */
  readonly prefix?: readonly string[];
  /** TLS floor and key exchange (GATEWAY_OPENVPN_TLS_MIN, GATEWAY_OPENVPN_DH; docs/adr/0064-routeros6-tls.md). */
  readonly tls?: { readonly versionMin: '1.0' | '1.1' | '1.2' | '1.3'; readonly dh: 'ffdhe2048' | 'none' };
}

function client(path: string, password: string, bytecountSeconds: number): ManagementClient {
  return new ManagementClient({
    path,
    password,
    bytecountSeconds,
    killStragglersOnAttach: true,
    commandTimeoutMs: 15_000,
    reconnect: { initialDelayMs: 200, maxDelayMs: 2000 },
  });
}

export async function startOpenVpnRuntime(o: RuntimeOptions): Promise<OpenVpnRuntime> {
  const dir = runtimeDir(o.dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const password = randomBytes(18).toString('base64url');
  const sock = join(dir, 'mgmt.sock');
  rmSync(sock, { force: true });
  const bytecount = o.bytecountSeconds ?? 5;
  if (o.mode === 'fake') {
    o.logger.warn(
      '*** FAKE OPENVPN: no tunnels carry traffic. A fake management server stands in for openvpn (no root, /dev/net/tun or openvpn here, or GATEWAY_OPENVPN=fake) ***',
    );
    const fake = await FakeOpenVpnServer.start({ path: sock, password, hold: true, handWindowMs: 30_000 });
    const management = client(sock, password, bytecount);
    return {
      mode: 'fake',
      management,
      fake,
      async stop() {
        await management.close();
        await fake.close();
      },
    };
  }
  await killLeftover(join(dir, 'openvpn.pid'), o.logger);
  const pki = o.pki;
  if (!pki?.current()) throw new Error('no server certificate from the control plane: cannot start openvpn');
  writeFileSync(join(dir, 'mgmt.pw'), renderManagementPasswordFile(password), { mode: 0o600 });
  writeFileSync(
    join(dir, 'server.conf'),
    renderServerConfig({
      port: o.port,
      caPath: pki.caPath,
      certPath: pki.certPath,
      keyPath: pki.keyPath,
      crlPath: pki.crlPath,
      managementSocketPath: sock,
      managementPasswordFile: join(dir, 'mgmt.pw'),
      handWindow: 30,
      ...(o.tls ? { tlsVersionMin: o.tls.versionMin, dh: o.tls.dh } : {}),
    }),
  );
  const supervisor = new OpenVpnSupervisor({
    configPath: join(dir, 'server.conf'),
    extraArgs: ['--writepid', join(dir, 'openvpn.pid')],
    ...(o.prefix ? { prefix: o.prefix } : {}),
    restart: { initialDelayMs: 500, maxDelayMs: 5000 },
    stopGraceMs: 3000,
  });
  supervisor.on('log', (e) => {
    if (['fatal', 'options-error', 'bind-error', 'tun-error', 'exiting', 'initialized'].includes(e.kind))
      o.logger.warn({ openvpn: e.message }, 'openvpn');
  });
  supervisor.on('exit', (e) => o.logger.warn({ exit: e }, 'openvpn exited'));
  supervisor.start();
  // The socket appears once openvpn is up; the client retries until then.
  const management = client(sock, password, bytecount);
  return {
    mode: 'real',
    management,
    supervisor,
    async stop() {
      await management.close();
      await supervisor.stop();
    },
  };
}
