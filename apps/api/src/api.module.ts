import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { APP_GUARD, APP_INTERCEPTOR, APP_PIPE } from '@nestjs/core';
import {
  ApiKeysRepository,
  AuditRepository,
  InvitationsRepository,
  MembershipsRepository,
  RegionsRepository,
  SessionsRepository,
  SetupRepository,
  SitesRepository,
  TenantsRepository,
  UsersRepository,
} from '@backplane/db';
import { OpsModule } from '@backplane/observability';
import { ApiKeysController, ApiKeysService } from './api-keys/api-keys.controller';
import { AuditController } from './audit/audit.controller';
import { AuditService } from './audit/audit.service';
import { AuthController } from './auth/auth.controller';
import { AuthGuard } from './auth/auth.guard';
import { AuthService } from './auth/auth.service';
import { SetupController } from './auth/setup.controller';
import { SetupService } from './auth/setup.service';
import { TokenService } from './auth/tokens';
import { IdempotencyInterceptor } from './common/idempotency';
import { ApiMetrics } from './common/metrics';
import { Throttle } from './common/throttle';
import { SchemaValidationPipe } from './common/validation';
import { API_DEPS, type ApiDeps } from './deps';
import { GatewayLinkModule } from './gateway-link/gateway-link.module';
import { JobsModule } from './jobs/jobs.module';
import { OnboardingModule } from './onboarding/onboarding.module';
import { PortalModule } from './portal/portal.module';
import { RealtimePublisherModule } from './realtime/publisher.module';
import { RealtimeServer } from './realtime/realtime.server';
import { GatewayLinkController, RegionsController, RegionsService } from './regions/regions.controller';
import { SitesController } from './sites/sites.controller';
import { SitesService } from './sites/sites.service';
import { InvitationsController, TenantInvitationsController } from './tenants/invitations.controller';
import { InvitationsService } from './tenants/invitations.service';
import { TenantsController } from './tenants/tenants.controller';
import { TenantsService } from './tenants/tenants.service';
import { TelemetryModule } from './telemetry/telemetry.module';

const REPOSITORIES = [
  ApiKeysRepository,
  AuditRepository,
  InvitationsRepository,
  MembershipsRepository,
  RegionsRepository,
  SessionsRepository,
  SetupRepository,
  SitesRepository,
  TenantsRepository,
  UsersRepository,
];

export type ApiModuleOptions = ApiDeps;

/** The control plane's root module: what runs in the api process is decided here. */
@Module({})
export class ApiModule {
  static register(deps: ApiDeps): DynamicModule {
    const providers: Provider[] = [
      { provide: API_DEPS, useValue: deps },
      {
        provide: TokenService,
        useValue: new TokenService(deps.secrets.jwtSigningKey, deps.config.API_ACCESS_TOKEN_TTL),
      },
      { provide: Throttle, useValue: new Throttle(deps.redis, deps.redisPrefix) },
      { provide: ApiMetrics, useValue: new ApiMetrics(deps.registry) },
      ...REPOSITORIES.map((R) => ({ provide: R, useValue: new R() })),
      AuditService,
      AuthService,
      SetupService,
      TenantsService,
      InvitationsService,
      ApiKeysService,
      SitesService,
      RegionsService,
      { provide: APP_GUARD, useClass: AuthGuard },
      AuthGuard, // also injectable by class: the realtime handshake reuses its tenant rule
      RealtimeServer,
      { provide: APP_INTERCEPTOR, useClass: IdempotencyInterceptor },
      { provide: APP_PIPE, useClass: SchemaValidationPipe },
    ];
    return {
      module: ApiModule,
      imports: [
        OpsModule.register({ checks: deps.checks, registry: deps.registry }),
        RealtimePublisherModule.register(deps),
        GatewayLinkModule.register(deps),
        OnboardingModule.register(deps),
        JobsModule.register(deps),
        PortalModule.register(deps),
        TelemetryModule.register(deps),
      ],
      controllers: [
        AuthController,
        SetupController,
        TenantsController,
        TenantInvitationsController,
        InvitationsController,
        ApiKeysController,
        SitesController,
        AuditController,
        RegionsController,
        GatewayLinkController,
      ],
      providers,
    };
  }
}
