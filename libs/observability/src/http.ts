import type { IncomingMessage } from 'node:http';
import type { DynamicModule, INestApplication, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Level, Logger } from 'pino';
import { correlationIdFrom, NestPinoLogger, withCorrelation } from './logger';

export interface HttpAppOptions {
  readonly logger: Logger;
  readonly bodyLimit?: number;
  /** TRUST_PROXY: '' (off), a hop count, or comma-separated proxy addresses/CIDRs. */
  readonly trustProxy?: string;
  /** LOG_REQUEST_LEVEL: the level of the one line logged per request (default info). */
  readonly requestLogLevel?: Level | 'silent';
}

/** Fastify's trustProxy from the TRUST_PROXY setting; never `true` (that trusts anyone). */
export function trustProxySetting(
  value: string | undefined,
): false | string[] | ((address: string, hop: number) => boolean) {
  if (!value) return false;
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    return (_address: string, hop: number) => hop < hops;
  }
  return value.split(',').map((v) => v.trim());
}

/**
 * A Nest application on Fastify with pino request logging and a correlation id per
 * request (taken from a sane `x-request-id` or generated, echoed back in the reply).
 * Each request is logged once, when answered, at `requestLogLevel` (Fastify's own pair of
 * "incoming request" / "request completed" lines at info is off).
 */
export async function createHttpApp(root: Type<unknown> | DynamicModule, options: HttpAppOptions) {
  const adapter = new FastifyAdapter({
    loggerInstance: options.logger.child({ component: 'http' }),
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    trustProxy: trustProxySetting(options.trustProxy),
    genReqId: (req: IncomingMessage) => correlationIdFrom(req.headers['x-request-id']),
    disableRequestLogging: true,
  });
  const instance = adapter.getInstance();
  const level = options.requestLogLevel ?? 'info';
  instance.addHook('onRequest', (req, reply, done) => {
    void reply.header('x-request-id', req.id);
    withCorrelation(req.id, done);
  });
  instance.addHook('onResponse', (req, reply, done) => {
    if (level !== 'silent') {
      req.log[level](
        {
          req: { method: req.method, url: req.url, route: req.routeOptions.url },
          res: { statusCode: reply.statusCode },
          responseTime: Math.round(reply.elapsedTime * 10) / 10,
        },
        'request completed',
      );
    }
    done();
  });
  const app = await NestFactory.create<NestFastifyApplication>(root, adapter, {
    logger: new NestPinoLogger(options.logger),
    bufferLogs: false,
    abortOnError: false,
  });
  app.enableShutdownHooks();
  return app;
}

export type HttpApp = INestApplication;
