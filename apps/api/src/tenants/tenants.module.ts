import { Module } from '@nestjs/common';
import { TenantsController } from './tenants.controller';
import { TenantsService } from './tenants.service';

/** Tenants, the signed-in person (`/me`) and memberships. */
@Module({ controllers: [TenantsController], providers: [TenantsService] })
export class TenantsModule {}
