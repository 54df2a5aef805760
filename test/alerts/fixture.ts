/**
 * Alerts test world: the real api (in-process, fresh database), real local receivers (HTTP
 * servers on loopback recording every request, an SMTP server from the `smtp-server`
 * package) and the worker's notification dispatcher in-process on the same database. The
 * dispatcher's SSRF guard allows loopback only because the tests set the platform setting
 * (`OUTBOUND_ALLOW_NETWORKS`), as an operator with an on-premises receiver would.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Keyring } from '@backplane/crypto';
import { createLogger } from '@backplane/observability';
import { RealtimePublisher } from '@backplane/realtime';
import { SMTPServer } from 'smtp-server';
import {
  AddressPolicy,
  AlertDispatcher,
  alertChangePublisher,
  SafeHttpClient,
  smtpMailer,
  type DispatcherOptions,
} from '../../apps/worker/src/alerts';
import { bootstrap, startApi, type Harness } from '../api/harness';

export interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly at: number;
}

export interface Receiver {
  readonly url: string;
  readonly requests: Received[];
  /** Answer for the next request (default 200). */
  status: (r: Received) => number;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const requests: Received[] = [];
  const rec: { status: (r: Received) => number } = { status: () => 200 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = {
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      };
      requests.push(r);
      res.statusCode = rec.status(r);
      res.end(res.statusCode < 300 ? '{"ok":true}' : 'nope');
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get status() {
      return rec.status;
    },
    set status(f) {
      rec.status = f;
    },
    close: () =>
      new Promise<void>((res) => {
        server.closeAllConnections();
        server.close(() => res());
      }),
  };
}

export interface Mail {
  readonly from: string;
  readonly to: string[];
  readonly raw: string;
}

export async function startSmtp(): Promise<{ port: number; mails: Mail[]; close(): Promise<void> }> {
  const mails: Mail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        cb();
      });
    },
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.server.address() as AddressInfo).port;
  return { port, mails, close: () => new Promise<void>((res) => server.close(() => res())) };
}

export interface AlertsWorld {
  readonly h: Harness;
  readonly tenantId: string;
  readonly token: string;
  readonly keyring: Keyring;
  api(method: string, path: string, body?: unknown): ReturnType<Harness['call']>;
  dispatcher(opts?: Partial<DispatcherOptions>, smtpPort?: number): AlertDispatcher;
  close(): Promise<void>;
}

/** Fast retries for tests (production: 10 s doubling to 1 h, for 24 h). */
export const TEST_POLICY: DispatcherOptions['policy'] = {
  backoffMs: (n) => Math.min(50 * 2 ** (n - 1), 400),
  maxAttempts: 1000,
  maxAgeMs: 3_600_000,
  breakerThreshold: 1000,
  breakerCooldownMs: 100,
  breakerMaxCooldownMs: 400,
  disableAfterMs: 3_600_000,
  disableMinFailures: 100_000,
};

/** `env`: more api settings (onboarding needs `TUNNEL_VERIFIER_KEY` and a `DATA_DIR`). */
export async function alertsWorld(env: Record<string, string> = {}): Promise<AlertsWorld> {
  const key = randomBytes(32);
  const h = await startApi({ ...env, ENCRYPTION_KEYS: `test:${key.toString('base64')}` });
  const { tenantId, token } = await bootstrap(h);
  const keyring = new Keyring([{ id: 'test', key }]);
  const made: { d: AlertDispatcher; close: () => void }[] = [];
  return {
    h,
    tenantId,
    token,
    keyring,
    api: (method, path, body) =>
      h.call(method, `/api/v1/tenants/${tenantId}${path}`, { token, ...(body !== undefined ? { body } : {}) }),
    dispatcher(opts = {}, smtpPort) {
      const mailer = smtpPort ? smtpMailer(`smtp://127.0.0.1:${smtpPort}`) : null;
      const logger = createLogger({ app: 'alerts-test', level: 'warn' });
      const d = new AlertDispatcher(
        {
          db: h.db,
          keyring,
          logger,
          // realtime `alert.changed` on the api's Redis prefix, as the worker publishes it
          onAlertChange: alertChangePublisher(new RealtimePublisher({ redis: h.redis, prefix: h.prefix }), logger),
          http: new SafeHttpClient({ policy: new AddressPolicy(['127.0.0.0/8']), timeoutMs: 2000 }),
          mailer,
          mailFrom: 'Backplane <alerts@backplane.test>',
          telemetryEverySeconds: 0,
        },
        { pollMs: 50, concurrency: 16, leaseMs: 5000, policy: TEST_POLICY, ...opts },
      );
      made.push({ d, close: () => mailer?.close() });
      return d;
    },
    async close() {
      for (const m of made) {
        await m.d.stop();
        m.close();
      }
      await h.close();
    },
  };
}

export async function until<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  ms: number,
  what: string,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
