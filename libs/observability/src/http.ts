import type { IncomingMessage } from 'node:http';
import type { DynamicModule, INestApplication, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Logger } from 'pino';
import { correlationIdFrom, NestPinoLogger, withCorrelation } from './logger';

export interface HttpAppOptions {
  readonly logger: Logger;
  readonly bodyLimit?: number;
}

/**
 * A Nest application on Fastify with pino request logging and a correlation id per
 * request (taken from a sane `x-request-id` or generated, echoed back in the reply).
 */
export async function createHttpApp(root: Type<unknown> | DynamicModule, options: HttpAppOptions) {
  const adapter = new FastifyAdapter({
    loggerInstance: options.logger.child({ component: 'http' }),
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    trustProxy: false,
    genReqId: (req: IncomingMessage) => correlationIdFrom(req.headers['x-request-id']),
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
  app.enableShutdownHooks();
  return app;
}

export type HttpApp = INestApplication;
