import { Module } from '@nestjs/common';
import { JobsModule } from '../jobs/jobs.module';
import { RolloutsModule } from '../rollouts/rollouts.module';
import { ChangesController } from './changes.controller';
import { ChangesService } from './changes.service';

/** Safe changes: plans (previews), approvals (two-person rule), maintenance windows. */
@Module({
  imports: [JobsModule, RolloutsModule],
  controllers: [ChangesController],
  providers: [ChangesService],
  exports: [ChangesService],
})
export class ChangesModule {}
