import { Module, type DynamicModule } from '@nestjs/common';
import { OpsModule, type ReadinessCheck } from '@backplane/observability';
import type { Registry } from 'prom-client';

/**
 * The worker's root module. Its HTTP server only serves /healthz, /readyz and /metrics;
 * the work itself is BullMQ processors.
 */
@Module({})
export class WorkerModule {
  static register(options: { checks: readonly ReadinessCheck[]; registry: Registry }): DynamicModule {
    return {
      module: WorkerModule,
      imports: [OpsModule.register({ checks: options.checks, registry: options.registry })],
    };
  }
}
