import { Module } from '@nestjs/common';
import { JobsModule } from '../jobs/jobs.module';
import { RolloutsController } from './rollouts.controller';
import { RolloutsService } from './rollouts.service';

/** Rollouts: a bulk change in waves with health gates (issue 18, ADR 0096); the worker advances them. */
@Module({
  // The ChangeGate: a rollout of a change that needs approval is refused (409 approval_required).
  imports: [JobsModule],
  controllers: [RolloutsController],
  providers: [RolloutsService],
  // ChangesService decides a rollout's approval request (ADR 0110).
  exports: [RolloutsService],
})
export class RolloutsModule {}
