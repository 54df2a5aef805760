import { Module, type DynamicModule } from '@nestjs/common';
import { AuditRepository } from '@backplane/db';
import { AuditService } from '../audit/audit.service';
import { BackupsController } from '../backups/backups.controller';
import { BackupsService } from '../backups/backups.service';
import { API_DEPS, type ApiDeps } from '../deps';
import { JobsController } from './jobs.controller';
import { JobsService } from './jobs.service';

/** Jobs (enqueue, bulk, list, get, cancel, recreate tunnel) and backups. */
@Module({})
export class JobsModule {
  static register(deps: ApiDeps): DynamicModule {
    return {
      module: JobsModule,
      controllers: [JobsController, BackupsController],
      providers: [
        { provide: API_DEPS, useValue: deps },
        { provide: AuditRepository, useValue: new AuditRepository() },
        AuditService,
        JobsService,
        BackupsService,
      ],
    };
  }
}
