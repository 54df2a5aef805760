import { Module, type DynamicModule } from '@nestjs/common';
import { OpsModule } from '@backplane/observability';
import { AlertsModule } from './alerts/alerts.module';
import { ApiKeysModule } from './api-keys/api-keys.module';
import { AuditModule } from './audit/audit.module';
import { AuthModule } from './auth/auth.module';
import { ChangesModule } from './changes/changes.module';
import { CoreModule } from './core/core.module';
import type { ApiDeps } from './deps';
import { FirmwareModule } from './firmware/firmware.module';
import { GatewayLinkModule } from './gateway-link/gateway-link.module';
import { JobsModule } from './jobs/jobs.module';
import { LiveModule } from './live/live.module';
import { OnboardingModule } from './onboarding/onboarding.module';
import { PortalModule } from './portal/portal.module';
import { RealtimePublisherModule } from './realtime/publisher.module';
import { RealtimeModule } from './realtime/realtime.module';
import { RegionsModule } from './regions/regions.module';
import { RolloutsModule } from './rollouts/rollouts.module';
import { SitesModule } from './sites/sites.module';
import { TelemetryModule } from './telemetry/telemetry.module';
import { TenantsModule } from './tenants/tenants.module';

export type ApiModuleOptions = ApiDeps;

/**
 * The control plane's root module: what runs in the api process is decided here, and only
 * here, as a list of feature modules (each folder under `apps/api/src/` is one feature with
 * its module, controller, service and schemas). `CoreModule`, `AuditModule` and the realtime
 * publisher are global: every feature injects them without importing them.
 */
@Module({})
export class ApiModule {
  static register(deps: ApiDeps): DynamicModule {
    return {
      module: ApiModule,
      imports: [
        CoreModule.register(deps),
        OpsModule.register({ checks: deps.checks, registry: deps.registry }),
        RealtimePublisherModule.register(deps),
        AuditModule,
        AuthModule,
        TenantsModule,
        ApiKeysModule,
        SitesModule,
        RegionsModule,
        GatewayLinkModule,
        LiveModule,
        OnboardingModule,
        JobsModule,
        TelemetryModule,
        RealtimeModule,
        ChangesModule,
        RolloutsModule,
        PortalModule.register(deps),
        FirmwareModule,
        AlertsModule,
      ],
    };
  }
}
