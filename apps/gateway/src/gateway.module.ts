import { Inject, Module, type BeforeApplicationShutdown, type DynamicModule } from '@nestjs/common';
import { OpsModule, type ReadinessCheck } from '@backplane/observability';
import type { Registry } from 'prom-client';

const SHUTDOWN = Symbol('GATEWAY_SHUTDOWN');

/** Stops openvpn, the relay and the timers when Nest shuts down (signal or app.close()). */
class GatewayShutdown implements BeforeApplicationShutdown {
  constructor(@Inject(SHUTDOWN) private readonly stop: () => Promise<void>) {}
  async beforeApplicationShutdown(): Promise<void> {
    await this.stop();
  }
}

/** The regional gateway's root module. */
@Module({})
export class GatewayModule {
  static register(options: {
    checks: readonly ReadinessCheck[];
    registry: Registry;
    shutdown?: () => Promise<void>;
  }): DynamicModule {
    return {
      module: GatewayModule,
      imports: [OpsModule.register({ checks: options.checks, registry: options.registry })],
      providers: [
        { provide: SHUTDOWN, useValue: options.shutdown ?? (() => Promise.resolve()) },
        { provide: GatewayShutdown, useClass: GatewayShutdown },
      ],
    };
  }
}
