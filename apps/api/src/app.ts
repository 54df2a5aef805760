import { timingSafeEqual } from 'node:crypto';
import { createHttpApp } from '@backplane/observability';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { ApiModule } from './api.module';
import { ApiErrorFilter } from './common/error.filter';
import { ApiMetrics } from './common/metrics';
import { PORTAL_CSP } from './portal/portal.module';
import type { ApiDeps } from './deps';
import { addEventWebhooks } from './alerts/openapi-webhooks';

export interface RouteInfo {
  readonly method: string;
  readonly url: string;
}

export interface ApiApp {
  readonly app: NestFastifyApplication;
  /** Every route the HTTP server registered (tests enumerate endpoints from this). */
  readonly routes: readonly RouteInfo[];
  readonly openapi: OpenAPIObject;
}

/** The operations routes come from `@backplane/observability` (no swagger there): their summaries. */
const OPS_SUMMARIES: Record<string, string> = {
  '/healthz': 'Liveness',
  '/readyz': 'Readiness (database and Redis reachable)',
  '/metrics': 'Prometheus metrics',
};

/** The OpenAPI document of the api, generated from the controllers' decorators and zod schemas. */
export function buildOpenApi(app: NestFastifyApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Backplane control plane API')
    .setDescription(
      'Tenants, users, API keys, sites, regions and gateways. Authenticate with `Authorization: Bearer <access token or API key>`. ' +
        'Errors: `{ "error": { "code", "message", "requestId", "details"? } }`. Lists: `limit` + `cursor`, answer `{ items, nextCursor }`.',
    )
    .setVersion('1')
    .addBearerAuth()
    .build();
  const doc = SwaggerModule.createDocument(app, config);
  for (const [path, summary] of Object.entries(OPS_SUMMARIES)) {
    const get = doc.paths[path]?.get;
    if (get) get.summary ??= summary;
  }
  addEventWebhooks(doc);
  return doc;
}

/** Builds the api (not listening yet): used by main.ts, the tests and the benchmark. */
export async function createApiApp(deps: ApiDeps): Promise<ApiApp> {
  const app = await createHttpApp(ApiModule.register(deps), {
    logger: deps.logger,
    bodyLimit: deps.config.API_BODY_LIMIT,
    trustProxy: deps.config.TRUST_PROXY,
    requestLogLevel: deps.config.LOG_REQUEST_LEVEL,
  });
  const fastify = app.getHttpAdapter().getInstance();
  const routes: RouteInfo[] = [];
  fastify.addHook('onRoute', (r: RouteOptions) => {
    const methods = Array.isArray(r.method) ? r.method : [r.method];
    for (const m of methods) if (m !== 'HEAD') routes.push({ method: m, url: r.url });
  });

  // Behind a proxy without TRUST_PROXY every client has the proxy's address, so one client's
  // failures throttle everyone: say so once, at the first forwarded request (issue 14 finding 5).
  if (!deps.config.TRUST_PROXY) {
    let warned = false;
    fastify.addHook('onRequest', (req: FastifyRequest, _reply: FastifyReply, done: () => void) => {
      if (!warned && req.headers['x-forwarded-for'] !== undefined) {
        warned = true;
        deps.logger.warn(
          { peer: req.ip },
          'request carries X-Forwarded-For but TRUST_PROXY is not set: behind a proxy or load balancer every client ' +
            'shares its address in rate limits, sign-in throttling and audit entries. Set TRUST_PROXY to the ' +
            "proxy's address/CIDR or hop count (or keep it empty if clients connect directly and the header is spoofed).",
        );
      }
      done();
    });
  }

  // Issue 14 finding 8: API answers (tokens, keys, secrets, tenant data) are never cached by
  // a browser or proxy; the API docs page gets the portal's Content-Security-Policy.
  fastify.addHook('onSend', (req: FastifyRequest, reply: FastifyReply, payload: unknown, done: () => void) => {
    const url = req.url;
    if (url.startsWith('/api/docs')) void reply.header('content-security-policy', PORTAL_CSP);
    else if (url.startsWith('/api/') && !reply.hasHeader('cache-control'))
      void reply.header('cache-control', 'no-store');
    done();
  });

  // `/metrics` (request counts by route, job and tenant gauges) is not for the public port:
  // loopback peers, or a scraper with METRICS_TOKEN (issue 14 finding 8).
  const metricsToken = deps.config.METRICS_TOKEN;
  fastify.addHook('onRequest', (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
    if (req.url !== '/metrics' && !req.url.startsWith('/metrics?')) return done();
    const peer = req.socket.remoteAddress ?? '';
    const loopback = peer === '::1' || peer.startsWith('127.') || peer.startsWith('::ffff:127.');
    const header = req.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    const tokenOk =
      metricsToken !== undefined &&
      given.length === Buffer.byteLength(metricsToken) &&
      timingSafeEqual(given, Buffer.from(metricsToken));
    if (tokenOk || (loopback && req.headers['x-forwarded-for'] === undefined)) return done();
    void reply.code(403).header('content-type', 'text/plain').send('metrics need METRICS_TOKEN or a loopback peer\n');
  });

  const metrics = app.get(ApiMetrics);
  fastify.addHook('onResponse', (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const route = req.routeOptions.url ?? '<unmatched>';
    if (route !== '/metrics') {
      metrics.requestDuration.observe(
        { method: req.method, route, status_code: String(reply.statusCode) },
        reply.elapsedTime / 1000,
      );
    }
    done();
  });

  app.useGlobalFilters(new ApiErrorFilter(deps.logger.child({ component: 'api-errors' })));
  if (deps.config.API_CORS_ORIGINS.length > 0) {
    app.enableCors({ origin: deps.config.API_CORS_ORIGINS, credentials: false, maxAge: 600 });
  }
  const nest = app;
  const openapi = buildOpenApi(nest);
  SwaggerModule.setup('api/docs', nest, openapi, {
    jsonDocumentUrl: 'api/docs/openapi.json',
    yamlDocumentUrl: 'api/docs/openapi.yaml',
  });
  await nest.init();
  return { app: nest, routes, openapi };
}
