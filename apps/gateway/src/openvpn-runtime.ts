import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createCa,
  issueServerCertificate,
  ManagementClient,
  OpenVpnSupervisor,
  renderManagementPasswordFile,
  renderServerConfig,
} from '@backplane/openvpn';
import type { Logger } from 'pino';

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

/**
 * Dev PKI: the deployment CA lives in `<dataDir>/pki/ca.{pem,key}` (created on first use,
 * loudly); the gateway's server certificate is issued from it into the runtime directory.
 * Production: put the control plane's CA there (or mount it); see the ADR.
 */
async function ensurePki(dataDir: string, dir: string, name: string, logger: Logger): Promise<void> {
  const pkiDir = join(dataDir, 'pki');
  const caPem = join(pkiDir, 'ca.pem');
  const caKey = join(pkiDir, 'ca.key');
  if (!existsSync(caPem) || !existsSync(caKey)) {
    mkdirSync(pkiDir, { recursive: true, mode: 0o700 });
    const ca = await createCa({ commonName: 'Backplane Dev CA', algorithm: 'ecdsa-p256' });
    writeFileSync(caPem, ca.certificatePem);
    writeFileSync(caKey, ca.privateKeyPem, { mode: 0o600 });
    logger.warn({ caPem }, 'DEV PKI: created a new deployment CA in DATA_DIR; routers must trust this ca.pem');
  }
  const ca = { certificatePem: readFileSync(caPem, 'utf8'), privateKeyPem: readFileSync(caKey, 'utf8') };
  writeFileSync(join(dir, 'ca.pem'), ca.certificatePem);
  if (!existsSync(join(dir, 'server.pem')) || !existsSync(join(dir, 'server.key'))) {
    const cert = await issueServerCertificate(ca, { commonName: name, algorithm: 'ecdsa-p256' });
    writeFileSync(join(dir, 'server.pem'), cert.certificatePem);
    writeFileSync(join(dir, 'server.key'), cert.privateKeyPem, { mode: 0o600 });
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
  readonly name: string;
  readonly port: number;
  readonly logger: Logger;
  readonly mode: 'real' | 'fake';
  readonly bytecountSeconds?: number;
  /** Real mode: prefix the openvpn command (e.g. `ip netns exec gw`). */
  readonly prefix?: readonly string[];
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
  const dir = join(o.dataDir, 'gateway', 'openvpn');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const password = randomBytes(18).toString('base64url');
  const sock = join(dir, 'mgmt.sock');
  rmSync(sock, { force: true });
  const bytecount = o.bytecountSeconds ?? 5;
  if (o.mode === 'fake') {
    o.logger.warn(
      '*** FAKE OPENVPN: no tunnels carry traffic. A fake management server stands in for openvpn (no root, /dev/net/tun or openvpn here, or GATEWAY_OPENVPN=fake) ***',
    );
    const { FakeOpenVpnServer } = await import('@backplane/testing');
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
  await ensurePki(o.dataDir, dir, o.name, o.logger);
  writeFileSync(join(dir, 'mgmt.pw'), renderManagementPasswordFile(password), { mode: 0o600 });
  writeFileSync(
    join(dir, 'server.conf'),
    renderServerConfig({
      port: o.port,
      caPath: join(dir, 'ca.pem'),
      certPath: join(dir, 'server.pem'),
      keyPath: join(dir, 'server.key'),
      managementSocketPath: sock,
      managementPasswordFile: join(dir, 'mgmt.pw'),
      handWindow: 30,
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
