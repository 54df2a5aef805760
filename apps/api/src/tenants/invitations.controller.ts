import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { z } from 'zod';
import { Idempotent } from '../common/idempotency';
import {
  CurrentPrincipal,
  Public,
  RequestMeta,
  SignedIn,
  Tenant,
  TenantAccess,
  type Principal,
  type TenantContext,
} from '../common/request';
import { ApiErrors, uuidParam } from '../common/validation';
import {
  AcceptedResponse,
  AcceptInvitationBody,
  AcceptSignedInBody,
  CreateInvitationBody,
  CreatedInvitationResponse,
  InvitationPage,
} from './invitations.dto';
import { InvitationsService } from './invitations.service';
import { ListQuery } from './tenants.dto';

@ApiTags('tenants')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/tenants/:tenantId/invitations')
export class TenantInvitationsController {
  constructor(private readonly invitations: InvitationsService) {}

  @Post()
  @TenantAccess('admin')
  @Idempotent()
  @ApiOperation({
    summary: 'Invite someone by email',
    description:
      'Creates a single-use invitation (valid 7 days) for the email and role; re-inviting the same email replaces ' +
      'the pending invitation. No account is created, found or enrolled: the answer has the same fields whether ' +
      'an account with this email exists or not, and the person becomes a member only when they accept. ' +
      'Backplane sends no mail yet, so `token` and `acceptUrl` are returned here, to the inviting admin, ' +
      'exactly once (only a hash is stored): pass the link to the invitee over a channel you trust.',
  })
  @ApiResponse({ status: 201, standardSchema: CreatedInvitationResponse })
  create(
    @Tenant() t: TenantContext,
    @Body({ schema: CreateInvitationBody }) body: z.infer<typeof CreateInvitationBody>,
  ) {
    return this.invitations.create(t, body);
  }

  @Get()
  @TenantAccess('admin')
  @ApiOperation({ summary: 'Pending invitations (expired ones included until revoked or replaced)' })
  @ApiResponse({ status: 200, standardSchema: InvitationPage })
  list(@Tenant() t: TenantContext, @Query({ schema: ListQuery }) q: z.infer<typeof ListQuery>) {
    return this.invitations.list(t, q);
  }

  @Delete(':invitationId')
  @TenantAccess('admin')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke a pending invitation (its link stops working)' })
  async revoke(@Tenant() t: TenantContext, @Param('invitationId', { schema: uuidParam }) id: string): Promise<void> {
    await this.invitations.revoke(t, id);
  }
}

@ApiTags('tenants')
@ApiErrors()
@Controller('api/v1/invitations')
export class InvitationsController {
  constructor(private readonly invitations: InvitationsService) {}

  @Post('accept')
  @Public()
  @HttpCode(201)
  @ApiOperation({
    summary: 'Accept an invitation with a new account',
    description:
      'For an invitee without an account: creates the account for the invited email with the password chosen ' +
      'here, by the invitee, and the membership. When an account with that email exists, answers 409 and sets ' +
      'nothing: sign in and use `POST /api/v1/invitations/accept-signed-in`. Single use.',
  })
  @ApiResponse({ status: 201, standardSchema: AcceptedResponse })
  accept(
    @Body({ schema: AcceptInvitationBody }) body: z.infer<typeof AcceptInvitationBody>,
    @RequestMeta() req: { ip: string; id: string },
  ) {
    return this.invitations.acceptNew(body, { ip: req.ip, requestId: req.id });
  }

  @Post('accept-signed-in')
  @SignedIn()
  @ApiBearerAuth()
  @HttpCode(201)
  @ApiOperation({
    summary: 'Accept an invitation as the signed-in account',
    description: 'The signed-in account joins the tenant if its email is the invited one. Single use.',
  })
  @ApiResponse({ status: 201, standardSchema: AcceptedResponse })
  acceptSignedIn(
    @CurrentPrincipal() p: Principal,
    @Body({ schema: AcceptSignedInBody }) body: z.infer<typeof AcceptSignedInBody>,
    @RequestMeta() req: { ip: string; id: string },
  ) {
    return this.invitations.acceptSignedIn(p, body.token, { ip: req.ip, requestId: req.id });
  }
}
