import type { IncomingMessage } from 'node:http';
import type { DynamicModule, INestApplication, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
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
 * Fastify's request log lines: one per request when it is answered (not also one when it
 * arrives), at LOG_REQUEST_LEVEL; a request that failed is still logged as an error.
 */
class RequestLogController extends LogController {
  constructor(private readonly level: Level | 'silent') {
    super();
  }

  override incomingRequest(): void {
    // the completion line carries the method and url too
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) {
      reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
    } else if (this.level !== 'silent') {
      reply.log[this.level]({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
    }
  }
}

/**
 * A Nest application on Fastify with pino request logging and a correlation id per
 * request (taken from a sane `x-request-id` or generated, echoed back in the reply).
 * Each request is logged once, when answered, at `requestLogLevel`.
 */
export async function createHttpApp(root: Type<unknown> | DynamicModule, options: HttpAppOptions) {
  const adapter = new FastifyAdapter({
    loggerInstance: options.logger.child({ component: 'http' }),
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    trustProxy: trustProxySetting(options.trustProxy),
    genReqId: (req: IncomingMessage) => correlationIdFrom(req.headers['x-request-id']),
    logController: new RequestLogController(options.requestLogLevel ?? 'info'),
  });
  const instance = adapter.getInstance();
  instance.addHook('onRequest', (req, reply, done) => {
    void reply.header('x-request-id', req.id);
    withCorrelation(req.id, done);
  });
  const app = await NestFactory.create<NestFastifyApplication>(root, adapter, {
    logger: new NestPinoLogger(options.logger),
    bufferLogs: false,
    abortOnError: false,
  });
  // No Nest signal hooks: they run the shutdown hooks and re-raise the signal, bypassing
  // the app's own drain; runApp (lifecycle.ts) owns SIGTERM/SIGINT.
  return app;
}

export type HttpApp = INestApplication;
