import { createHttpApp } from '@backplane/observability';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { ApiModule } from './api.module';
import { ApiErrorFilter } from './common/error.filter';
import { ApiMetrics } from './common/metrics';
import type { ApiDeps } from './deps';

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

function buildOpenApi(app: NestFastifyApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Backplane control plane API')
    .setDescription(
      'Tenants, users, API keys, sites, regions and gateways. Authenticate with `Authorization: Bearer <access token or API key>`. ' +
        'Errors: `{ "error": { "code", "message", "requestId", "details"? } }`. Lists: `limit` + `cursor`, answer `{ items, nextCursor }`.',
    )
    .setVersion('1')
    .addBearerAuth()
    .build();
  return SwaggerModule.createDocument(app, config);
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
