import { Module } from '@nestjs/common';
import { BackupsController } from '../backups/backups.controller';
import { BackupsService } from '../backups/backups.service';
import { JobsController } from './jobs.controller';
import { JobsService } from './jobs.service';

/** Jobs (enqueue, bulk, list, get, cancel, recreate tunnel) and backups. */
@Module({
  controllers: [JobsController, BackupsController],
  providers: [JobsService, BackupsService],
  exports: [JobsService],
})
export class JobsModule {}
