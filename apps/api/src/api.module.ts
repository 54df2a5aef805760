import { Module, type DynamicModule } from '@nestjs/common';
import { OpsModule, type ReadinessCheck } from '@backplane/observability';
import type { Registry } from 'prom-client';

export interface ApiModuleOptions {
  readonly checks: readonly ReadinessCheck[];
  readonly registry: Registry;
}

/** The control plane's root module: what runs in the api process is decided here. */
@Module({})
export class ApiModule {
  static register(options: ApiModuleOptions): DynamicModule {
    return {
      module: ApiModule,
      imports: [OpsModule.register({ checks: options.checks, registry: options.registry })],
    };
  }
}
