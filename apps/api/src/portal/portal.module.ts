import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Inject, Module, type DynamicModule, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { API_DEPS, type ApiDeps } from '../deps';

/** Paths the portal never answers for, so an unknown api route stays a JSON 404. */
const RESERVED = /^\/(api|healthz|readyz|metrics|o)(\/|$)/;

/**
 * The policy of the portal's HTML: scripts only from this origin (no inline script, so an
 * injected `<script>` cannot run and read the in-memory access token or the tab's refresh
 * token); inline styles are allowed because the component library sets CSS variables inline.
 */
export const PORTAL_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** `apps/portal/dist` found upwards from this file (source, or dist/apps/api/… after build:js) or the working directory. */
export function findPortalDist(): string | null {
  const starts = [typeof __dirname === 'string' ? __dirname : null, process.cwd()].filter((s): s is string => !!s);
  for (const start of starts) {
    let dir = resolve(start);
    for (let i = 0; i < 8; i++) {
      const candidate = join(dir, 'apps', 'portal', 'dist');
      if (existsSync(join(candidate, 'index.html'))) return candidate;
      const up = dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  return null;
}

/**
 * Registers the built portal (static files plus the SPA fallback) on the api's Fastify instance.
 * Not awaited on purpose: awaiting `register` before Nest has finished would load the plugin
 * queue early and Nest's routes would miss the error handler it sets afterwards (malformed JSON
 * would no longer answer in the api's error shape).
 */
export function servePortal(fastify: FastifyInstance, root: string): void {
  void fastify.register(fastifyStatic, {
    root,
    prefix: '/',
    wildcard: false,
    index: false,
    setHeaders: (reply: FastifyReply, path: string) => {
      void reply.header(
        'cache-control',
        /[\\/]assets[\\/]/.test(path) ? 'public, max-age=31536000, immutable' : 'no-cache',
      );
      void reply.header('x-content-type-options', 'nosniff');
    },
  });
  const sendIndex = async (req: FastifyRequest, reply: FastifyReply) => {
    const path = req.url.split('?')[0] ?? '/';
    const last = path.split('/').pop() ?? '';
    if (RESERVED.test(path) || last.includes('.')) return reply.callNotFound();
    const html = await readFile(join(root, 'index.html'), 'utf8');
    return reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('content-security-policy', PORTAL_CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('x-frame-options', 'DENY')
      .send(html);
  };
  fastify.get('/', sendIndex);
  fastify.get('/*', sendIndex);
}

@Module({})
export class PortalModule implements OnModuleInit {
  constructor(
    private readonly host: HttpAdapterHost,
    @Inject(API_DEPS) private readonly deps: ApiDeps,
  ) {}

  /** Serves `apps/portal/dist` at `/` when it has been built (`npm run portal:build`). */
  static register(deps: ApiDeps): DynamicModule {
    return { module: PortalModule, providers: [{ provide: API_DEPS, useValue: deps }] };
  }

  onModuleInit(): void {
    const root = findPortalDist();
    const log = this.deps.logger.child({ component: 'portal' });
    if (!root) {
      log.info('portal not built (npm run portal:build): serving the api only');
      return;
    }
    const fastify = this.host.httpAdapter.getInstance<FastifyInstance>();
    servePortal(fastify, root);
    log.info({ root }, 'serving the portal at /');
  }
}
