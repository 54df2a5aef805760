import { Module } from '@nestjs/common';
import { BackupsController } from '../backups/backups.controller';
import { BackupsService } from '../backups/backups.service';
import { ChangeGate } from '../changes/gate';
import { JobsController } from './jobs.controller';
import { JobsService } from './jobs.service';

/** Jobs (enqueue, bulk, list, get, cancel, recreate tunnel) and backups. */
@Module({
  controllers: [JobsController, BackupsController],
  providers: [JobsService, BackupsService, ChangeGate],
  exports: [JobsService, ChangeGate],
})
export class JobsModule {}
