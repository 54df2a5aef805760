import { Module, type DynamicModule } from '@nestjs/common';
import { RealtimePublisher } from '@backplane/realtime';
import type { ApiDeps } from '../deps';

/**
 * The api's one RealtimePublisher (one socket.io Redis emitter), available to every module
 * of the api: services that change what a portal shows publish through it, and
 * revocations disconnect sockets through it.
 */
@Module({})
export class RealtimePublisherModule {
  static register(deps: ApiDeps): DynamicModule {
    return {
      module: RealtimePublisherModule,
      global: true,
      providers: [
        {
          provide: RealtimePublisher,
          useValue: new RealtimePublisher({ redis: deps.redis, prefix: deps.redisPrefix }),
        },
      ],
      exports: [RealtimePublisher],
    };
  }
}
