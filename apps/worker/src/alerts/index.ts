import type { WorkerConfig } from '@backplane/config';
import type { Keyring } from '@backplane/crypto';
import type { RealtimeSink } from '@backplane/contracts';
import type { Database } from '@backplane/db';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { AlertDispatcher, defaultPolicy } from './dispatcher';
import type { AlertChange } from './engine';
import { SafeHttpClient } from './http-client';
import { smtpMailer } from './senders';
import { AddressPolicy } from './ssrf';

export { AlertDispatcher, defaultPolicy, type DispatcherDeps, type DispatcherOptions } from './dispatcher';
export { AlertEngine, type AlertChange } from './engine';
export { describe as describeEvent } from './formats';
export {
  dnsResolver,
  nodeConnector,
  SafeHttpClient,
  type ConnectRequest,
  type ConnectResponse,
  type Connector,
  type Resolver,
} from './http-client';
export { activeSecrets, sendToChannel, smtpMailer, type Mailer } from './senders';
export { newSigningSecret, signHeaders, signPayload, verifySignature } from './signing';
export { AddressPolicy, embeddedV4, OutboundRefusedError } from './ssrf';

/** The worker's notification dispatcher, from its configuration. */
export function workerDispatcher(deps: {
  config: WorkerConfig;
  db: Database;
  keyring: Keyring;
  logger: Logger;
  registry: Registry;
  /** Realtime `alert.changed` events for the portal (best effort, after the commit). */
  realtime?: RealtimeSink;
}): { dispatcher: AlertDispatcher; close(): void } {
  const mailer = deps.config.SMTP_URL ? smtpMailer(deps.config.SMTP_URL) : null;
  const dispatcher = new AlertDispatcher(
    {
      db: deps.db,
      keyring: deps.keyring,
      logger: deps.logger,
      registry: deps.registry,
      http: new SafeHttpClient({
        policy: new AddressPolicy(deps.config.OUTBOUND_ALLOW_NETWORKS),
        timeoutMs: Math.min(10_000, Math.floor(deps.config.NOTIFY_LEASE / 2)),
      }),
      mailer,
      mailFrom: deps.config.SMTP_FROM,
      onAlertChange: deps.realtime ? alertChangePublisher(deps.realtime, deps.logger) : undefined,
    },
    {
      pollMs: deps.config.NOTIFY_POLL_INTERVAL,
      concurrency: 32,
      leaseMs: deps.config.NOTIFY_LEASE,
      policy: defaultPolicy(deps.config.NOTIFY_RETRY_BASE),
    },
  );
  return { dispatcher, close: () => mailer?.close() };
}

/** The engine's `onAlertChange` hook publishing `alert.changed` (a lost event: the page polls). */
export function alertChangePublisher(
  sink: RealtimeSink,
  logger: Logger,
): (tenantId: string, change: AlertChange) => void {
  return (tenantId, change) => {
    sink.publish(tenantId, { type: 'alert.changed', data: change }).catch((err: unknown) => {
      logger.warn({ err, tenantId, alertId: change.alertId }, 'alert.changed not published');
    });
  };
}
