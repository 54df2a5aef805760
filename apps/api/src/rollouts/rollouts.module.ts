import { Module } from '@nestjs/common';
import { RolloutsController } from './rollouts.controller';
import { RolloutsService } from './rollouts.service';

/** Rollouts: a bulk change in waves with health gates (issue 18, ADR 0096); the worker advances them. */
@Module({
  controllers: [RolloutsController],
  providers: [RolloutsService],
})
export class RolloutsModule {}
