import { Global, Module, type DynamicModule } from '@nestjs/common';
import { APP_INTERCEPTOR, APP_PIPE } from '@nestjs/core';
import { loadTunnelVerifierKey } from '@backplane/config';
import * as db from '@backplane/db';
import { AuthCache } from '../auth/auth-cache';
import { TokenService } from '../auth/tokens';
import { IdempotencyInterceptor, IdempotencyService } from '../common/idempotency';
import { ApiMetrics } from '../common/metrics';
import { Throttle } from '../common/throttle';
import { SchemaValidationPipe } from '../common/validation';
import { API_DEPS, type ApiDeps } from '../deps';
import { VERIFIER_KEY } from '../gateway-link/verifier-key';

/** The repositories of `@backplane/db` the api's features inject (stateless: one instance each). */
const REPOSITORIES = [
  db.ApiKeysRepository,
  db.AuditRepository,
  db.InvitationsRepository,
  db.MembershipsRepository,
  db.RegionsRepository,
  db.SessionsRepository,
  db.SetupRepository,
  db.SitesRepository,
  db.TenantsRepository,
  db.UsersRepository,
];

/**
 * What every feature of the api may inject, built once from the process's dependencies:
 * `API_DEPS` (configuration, database, Redis, logger, keyring), the token service, the
 * throttle, the api metrics, the tunnel-verifier key and the repositories. Also the global
 * validation pipe and idempotency interceptor. Features import nothing to get these.
 */
@Global()
@Module({})
export class CoreModule {
  static register(deps: ApiDeps): DynamicModule {
    const singletons = [
      { provide: API_DEPS, useValue: deps },
      {
        provide: TokenService,
        useValue: new TokenService(deps.secrets.jwtSigningKey, deps.config.API_ACCESS_TOKEN_TTL),
      },
      { provide: Throttle, useValue: new Throttle(deps.redis, deps.redisPrefix) },
      { provide: ApiMetrics, useValue: new ApiMetrics(deps.registry) },
      { provide: VERIFIER_KEY, useValue: loadTunnelVerifierKey(deps.config.TUNNEL_VERIFIER_KEY, deps.config.DATA_DIR) },
      ...REPOSITORIES.map((R) => ({ provide: R, useValue: new R() })),
    ];
    return {
      module: CoreModule,
      providers: [
        ...singletons,
        IdempotencyService,
        AuthCache,
        { provide: APP_INTERCEPTOR, useClass: IdempotencyInterceptor },
        { provide: APP_PIPE, useClass: SchemaValidationPipe },
      ],
      exports: [...singletons.map((p) => p.provide), IdempotencyService, AuthCache],
    };
  }
}
