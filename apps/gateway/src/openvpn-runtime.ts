import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import {
  certificateMatchesKey,
  createCertificateRequest,
  FakeOpenVpnServer,
  LogTail,
  ManagementClient,
  OpenVpnSupervisor,
  parseOpenVpnLogLine,
  type OpenVpnLogEvent,
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
  /** How openvpn was found at start: started, adopted from an earlier gateway run, restarted, or run by someone else. */
  readonly origin: 'started' | 'adopted' | 'restarted' | 'external';
  /** The serving openvpn's pid (real mode, when known). */
  pid(): number | undefined;
  /** The gateway stops: management closed, openvpn left running with its tunnels (real mode). */
  detach(): Promise<void>;
  /** Stops openvpn too (the dev stack's Ctrl-C, tests). */
  stop(): Promise<void>;
  /**
   * A deliberate openvpn restart (config change, renewed certificate): logged, rate-limited
   * (false when deferred or one is already running), drained first ({@link onRestart}), then
   * SIGHUP: every tunnel reconnects.
   */
  restart(reason: string): Promise<boolean>;
  /**
   * How a deliberate restart drains (the gateway sets it once its tunnels and relay exist):
   * called before the SIGHUP, returns what ends the drain once openvpn serves again. A
   * restart pending at start (config generation changed) waits for it (at most 5 s).
   */
  onRestart(drain: RestartDrain): void;
}

/** Begins a restart's drain (refuse new tunnels, let relayed calls finish); resolves to its end. */
export type RestartDrain = (reason: string) => Promise<() => void>;

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

/** Whether `pid` is a running openvpn (its `comm`). */
export function isOpenVpn(pid: number | undefined): pid is number {
  if (pid === undefined || !Number.isSafeInteger(pid) || pid <= 1) return false;
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'openvpn';
  } catch {
    return false;
  }
}

function readPid(pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
async function killOpenVpn(pid: number, graceMs = 5000): Promise<void> {
  if (!isOpenVpn(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let waited = 0; waited < graceMs && isOpenVpn(pid); waited += 100) await new Promise((r) => setTimeout(r, 100));
  if (isOpenVpn(pid)) process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 50 && isOpenVpn(pid); i++) await new Promise((r) => setTimeout(r, 100));
}

/**
 * Stops the openvpn a gateway left running under `dataDir` (its pid file). For whoever
 * owns the whole machine's lifecycle: the dev stack on Ctrl-C, tests. A gateway that stops
 * leaves it running on purpose (ADR 0062).
 */
export async function stopLeftOpenVpn(dataDir: string): Promise<number | undefined> {
  const pid = readPid(join(runtimeDir(dataDir), 'openvpn.pid'));
  if (!isOpenVpn(pid)) return undefined;
  await killOpenVpn(pid);
  return pid;
}

/** At once, for an exit that cannot wait (a second Ctrl-C): SIGKILL to the openvpn left under `dataDir`. */
export function killLeftOpenVpnSync(dataDir: string): void {
  const pid = readPid(join(runtimeDir(dataDir), 'openvpn.pid'));
  if (isOpenVpn(pid)) process.kill(pid, 'SIGKILL');
}

/** True when something accepts connections on the unix socket within `timeoutMs`. */
function socketAnswers(path: string, timeoutMs = 1500): Promise<boolean> {
  if (!existsSync(path)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const s = connect({ path });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** `restarts.json`: when openvpn was last restarted on purpose (survives gateway restarts). */
const RestartLog = z.object({ lastAt: z.string(), reason: z.string() });

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
  /** Real mode: `managed` (default) starts openvpn detached and adopts a running one; `external` only attaches. */
  readonly process?: 'managed' | 'external';
  /** Server `reneg-sec` (s). */
  readonly renegSeconds?: number;
  readonly keepalive?: readonly [number, number];
  readonly handWindow?: number;
  /** Minimum time between deliberate restarts (ms, default 5 min). */
  readonly restartMinIntervalMs?: number;
  /** Liveness check of an adopted openvpn (ms, default 2 s). */
  readonly watchIntervalMs?: number;
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

async function startFake(sock: string, bytecount: number, logger: Logger): Promise<OpenVpnRuntime> {
  const password = randomBytes(18).toString('base64url');
  rmSync(sock, { force: true });
  logger.warn(
    '*** FAKE OPENVPN: no tunnels carry traffic. A fake management server stands in for openvpn (no root, /dev/net/tun or openvpn here, or GATEWAY_OPENVPN=fake) ***',
  );
  const fake = await FakeOpenVpnServer.start({ path: sock, password, hold: true, handWindowMs: 30_000 });
  const management = client(sock, password, bytecount);
  const stop = async (): Promise<void> => {
    await management.close();
    await fake.close();
  };
  return {
    mode: 'fake',
    origin: 'started',
    management,
    fake,
    pid: () => undefined,
    detach: stop,
    stop,
    restart: () => Promise.resolve(false),
    onRestart: () => undefined,
  };
}

/**
 * openvpn outlives the gateway (ADR 0062). In `managed` mode the gateway starts it in its
 * own session (setsid) with its log in a file, and leaves it running when the gateway stops
 * or dies; the next gateway finds it by its pid file and attaches when it runs the same
 * config generation (a hash of the rendered config and the server certificate's serial)
 * and its management socket answers: its tunnels are adopted from `status 3`, none drops.
 * Otherwise openvpn is (re)started, which is logged. A change of generation while it runs
 * (new config, renewed certificate) is applied by a deliberate restart: logged, rate-limited.
 */
export async function startOpenVpnRuntime(o: RuntimeOptions): Promise<OpenVpnRuntime> {
  const dir = runtimeDir(o.dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const sock = join(dir, 'mgmt.sock');
  const bytecount = o.bytecountSeconds ?? 5;
  if (o.mode === 'fake') return startFake(sock, bytecount, o.logger);

  const log = o.logger;
  const pki = o.pki;
  const meta = pki?.current();
  if (!pki || !meta) throw new Error('no server certificate from the control plane: cannot start openvpn');
  const pidFile = join(dir, 'openvpn.pid');
  const confFile = join(dir, 'server.conf');
  const genFile = join(dir, 'server.conf.generation');
  const pwFile = join(dir, 'mgmt.pw');
  const logFile = join(dir, 'openvpn.log');
  const restartFile = join(dir, 'restarts.json');

  // the management password stays with the openvpn that reads it: a new one only with a new openvpn
  const storedPassword = readText(pwFile)?.trim();
  const config = renderServerConfig({
    port: o.port,
    caPath: pki.caPath,
    certPath: pki.certPath,
    keyPath: pki.keyPath,
    crlPath: pki.crlPath,
    managementSocketPath: sock,
    managementPasswordFile: pwFile,
    handWindow: o.handWindow ?? 30,
    ...(o.renegSeconds !== undefined ? { renegSeconds: o.renegSeconds } : {}),
    ...(o.keepalive ? { keepalive: o.keepalive } : {}),
    ...(o.tls ? { tlsVersionMin: o.tls.versionMin, dh: o.tls.dh } : {}),
  });
  const generation = createHash('sha256').update(config).update(`\ncert ${meta.serialNumber}\n`).digest('hex');
  const writeConfig = (password: string): void => {
    writeAtomic(pwFile, renderManagementPasswordFile(password), 0o600);
    writeAtomic(confFile, config, 0o600);
    writeAtomic(genFile, `${generation}\n`, 0o600);
  };

  const supervisor = new OpenVpnSupervisor({
    configPath: confFile,
    extraArgs: ['--writepid', pidFile],
    logFile,
    ...(o.prefix ? { prefix: o.prefix } : {}),
    restart: { initialDelayMs: 500, maxDelayMs: 5000 },
    stopGraceMs: 3000,
  });
  /** Who waits for openvpn to serve again after a SIGHUP (its "Initialization Sequence Completed"). */
  const initWaiters = new Set<() => void>();
  const onLog = (e: OpenVpnLogEvent): void => {
    if (e.kind === 'initialized') for (const w of [...initWaiters]) w();
    if (['fatal', 'options-error', 'bind-error', 'tun-error', 'exiting', 'initialized'].includes(e.kind))
      log.warn({ openvpn: e.message }, 'openvpn');
  };
  supervisor.on('log', onLog);
  supervisor.on('exit', (e) => log.warn({ exit: e }, 'openvpn exited'));

  const runningPid = readPid(pidFile);
  const running = isOpenVpn(runningPid) ? runningPid : undefined;
  let origin: OpenVpnRuntime['origin'];
  let password: string;
  let pendingRestart: string | undefined;
  let adopted: number | undefined;
  const external = o.process === 'external';

  if (external) {
    password = storedPassword || randomBytes(18).toString('base64url');
    const changed = readText(genFile)?.trim() !== generation;
    writeConfig(password);
    origin = 'external';
    if (changed && (await socketAnswers(sock))) pendingRestart = 'config generation changed';
    log.info(
      { socket: sock, config: confFile },
      'openvpn runs outside the gateway (GATEWAY_OPENVPN_PROCESS=external): attaching',
    );
  } else if (running !== undefined && storedPassword && (await socketAnswers(sock))) {
    // a live openvpn from an earlier gateway run: attach, its tunnels stay up
    password = storedPassword;
    adopted = running;
    origin = 'adopted';
    if (readText(genFile)?.trim() !== generation) {
      // openvpn re-reads its config on the (deliberate, rate-limited) restart after attaching
      writeConfig(password);
      pendingRestart = 'config generation changed';
    }
    log.info(
      { pid: running, generation: generation.slice(0, 12) },
      'attaching to the running openvpn: its tunnels are adopted',
    );
  } else {
    if (running !== undefined) {
      log.warn(
        { pid: running },
        'restarting openvpn: the running one has no usable management socket or password (its tunnels reconnect)',
      );
      await killOpenVpn(running);
    }
    password = randomBytes(18).toString('base64url');
    writeConfig(password);
    rmSync(sock, { force: true });
    supervisor.start();
    origin = running !== undefined ? 'restarted' : 'started';
  }

  // an adopted openvpn: watched by its pid; when it goes, a supervised one takes over
  let watcher: NodeJS.Timeout | undefined;
  let adoptedTail: LogTail | undefined;
  let detached = false;
  if (adopted !== undefined) {
    const pid = adopted;
    adoptedTail = new LogTail(logFile, (line) => onLog(parseOpenVpnLogLine(line)));
    watcher = setInterval(() => {
      if (isOpenVpn(pid) || detached) return;
      clearInterval(watcher);
      watcher = undefined;
      adoptedTail?.stop();
      adoptedTail = undefined;
      adopted = undefined;
      log.warn({ pid }, 'the adopted openvpn exited: starting a new one');
      rmSync(sock, { force: true });
      supervisor.start();
    }, o.watchIntervalMs ?? 2000);
    watcher.unref();
  }

  const management = client(sock, password, bytecount);
  const minInterval = o.restartMinIntervalMs ?? 5 * 60_000;
  let deferred: NodeJS.Timeout | undefined;
  let drainHook: RestartDrain | undefined;
  let hookSet: () => void = () => undefined;
  const hookReady = new Promise<void>((resolve) => (hookSet = resolve));
  let restarting = false;
  /** openvpn serves again after its SIGHUP: the hold it asks for again, or its initialisation line. */
  const servingAgain = (timeoutMs: number): { done: Promise<boolean>; cancel: () => void } => {
    let finish: (ok: boolean) => void = () => undefined;
    const done = new Promise<boolean>((resolve) => (finish = resolve));
    const onInit = (): void => finish(true);
    initWaiters.add(onInit);
    const off = management.on('event', (e) => {
      if (e.type === 'hold') finish(true);
    });
    const timer = setTimeout(() => finish(false), timeoutMs);
    const cancel = (): void => {
      initWaiters.delete(onInit);
      off();
      clearTimeout(timer);
    };
    void done.then(cancel);
    return { done, cancel };
  };
  const restart = async (reason: string): Promise<boolean> => {
    if (restarting) {
      log.info({ reason }, 'openvpn restart already running: this reason is served by it');
      return false;
    }
    const last = RestartLog.safeParse(JSON.parse(readText(restartFile) ?? 'null'));
    const since = last.success ? Date.now() - Date.parse(last.data.lastAt) : Infinity;
    if (since < minInterval) {
      const inMs = minInterval - since;
      log.warn(
        { reason, inMs, lastRestart: last.success ? last.data : undefined },
        'openvpn restart deferred (rate limit): tunnels stay on the current config for now',
      );
      clearTimeout(deferred);
      deferred = setTimeout(() => void restart(reason).catch(() => undefined), inMs);
      deferred.unref();
      return false;
    }
    restarting = true;
    const t0 = Date.now();
    try {
      const tunnels = await management.status().then(
        (st) => st.clients.length,
        () => undefined,
      );
      log.warn(
        { reason, tunnels },
        'deliberate openvpn restart: draining (new tunnels refused, relayed calls finish), then SIGHUP: every tunnel reconnects',
      );
      const endDrain = drainHook
        ? await drainHook(reason).catch((err: unknown) => {
            log.warn({ err }, 'openvpn restart: the drain failed; restarting anyway');
            return () => undefined;
          })
        : () => undefined;
      writeAtomic(restartFile, JSON.stringify({ lastAt: new Date().toISOString(), reason }));
      const back = servingAgain(30_000);
      try {
        await management.command('signal SIGHUP');
      } catch (err) {
        back.cancel();
        endDrain();
        throw err;
      }
      const served = await back.done;
      endDrain();
      log.warn(
        { reason, tunnels, tookMs: Date.now() - t0 },
        served
          ? 'openvpn restarted (config re-read): admitting tunnels again, they reconnect now'
          : 'openvpn restart: no sign of openvpn serving again within 30 s; admitting tunnels again',
      );
      return true;
    } finally {
      restarting = false;
    }
  };
  if (pendingRestart) {
    const reason = pendingRestart;
    const off = management.on('ready', () => {
      off();
      // the gateway sets its drain right after attaching; a runtime used on its own restarts after 5 s
      const wait = new Promise<void>((resolve) => setTimeout(resolve, 5000).unref());
      void Promise.race([hookReady, wait])
        .then(() => restart(reason))
        .catch((err: unknown) => log.warn({ err }, 'openvpn restart failed'));
    });
  }

  /** Detach and stop both begin here: no more watching, restarts or log tail, management closed. */
  const letGo = async (): Promise<void> => {
    detached = true;
    clearInterval(watcher);
    clearTimeout(deferred);
    adoptedTail?.stop();
    await management.close();
  };
  return {
    mode: 'real',
    origin,
    management,
    supervisor,
    pid: () => supervisor.pid ?? adopted ?? readPid(pidFile),
    restart,
    onRestart(drain) {
      drainHook = drain;
      hookSet();
    },
    async detach() {
      await letGo();
      // openvpn keeps running in its own session; the next gateway attaches to it
      supervisor.release();
      log.info({ pid: readPid(pidFile) }, 'gateway detached from openvpn: it keeps running with its tunnels');
    },
    async stop() {
      await letGo();
      await supervisor.stop();
      const pid = readPid(pidFile);
      if (!external && isOpenVpn(pid)) await killOpenVpn(pid);
    },
  };
}
