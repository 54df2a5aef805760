import { Module, type DynamicModule } from '@nestjs/common';
import { OpsModule, type ReadinessCheck } from '@backplane/observability';
import type { Registry } from 'prom-client';

/** The regional gateway's root module. */
@Module({})
export class GatewayModule {
  static register(options: { checks: readonly ReadinessCheck[]; registry: Registry }): DynamicModule {
    return {
      module: GatewayModule,
      imports: [OpsModule.register({ checks: options.checks, registry: options.registry })],
    };
  }
}
