import { Module } from '@nestjs/common';
import { InvitationsController, TenantInvitationsController } from './invitations.controller';
import { InvitationsService } from './invitations.service';
import { TenantsController } from './tenants.controller';
import { TenantsService } from './tenants.service';

/** Tenants, the signed-in person (`/me`), memberships and the invitations people join by. */
@Module({
  controllers: [TenantsController, TenantInvitationsController, InvitationsController],
  providers: [TenantsService, InvitationsService],
})
export class TenantsModule {}
