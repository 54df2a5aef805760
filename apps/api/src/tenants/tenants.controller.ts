import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { UsersRepository } from '@backplane/db';
import type { z } from 'zod';
import { ApiError } from '../common/api-error';
import { Idempotent } from '../common/idempotency';
import {
  CurrentActor,
  CurrentPrincipal,
  SignedIn,
  Tenant,
  type Actor,
  type Principal,
  type TenantContext,
} from '../common/request';
import { uuidParam, ApiErrors } from '../common/validation';
import { API_DEPS, type ApiDeps } from '../deps';
import {
  CreatedTenantResponse,
  CreateTenantBody,
  ListQuery,
  MemberPage,
  MemberResponse,
  MyTenantsResponse,
  TenantResponse,
  UpdateMemberBody,
  UpdateTenantBody,
} from './tenants.dto';
import { TenantsService } from './tenants.service';
import { Route } from '../common/route';

@ApiTags('tenants')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/tenants')
export class TenantsController {
  constructor(
    private readonly tenants: TenantsService,
    private readonly users: UsersRepository,
    @Inject(API_DEPS) private readonly deps: ApiDeps,
  ) {}

  @Post()
  @Route('Create a tenant', 'platform')
  @Idempotent()
  @ApiOperation({
    summary: 'Create a tenant with an owner invitation',
    description:
      'Creates the tenant and a single-use owner invitation for `owner.email`. No account is created or changed: ' +
      'the owner accepts with their own password (new account) or signed in (existing account). The invitation ' +
      'token and link are returned once, in `ownerInvitation` (no mail is sent yet).',
  })
  @ApiResponse({ status: 201, standardSchema: CreatedTenantResponse })
  create(@CurrentActor() actor: Actor, @Body({ schema: CreateTenantBody }) body: z.infer<typeof CreateTenantBody>) {
    return this.tenants.create(actor, body);
  }

  /** The tenants the signed-in person belongs to. */
  @Get()
  @ApiOperation({ summary: 'List tenants' })
  @SignedIn()
  @ApiResponse({ status: 200, standardSchema: MyTenantsResponse })
  async mine(@CurrentPrincipal() p: Principal): Promise<z.infer<typeof MyTenantsResponse>> {
    if (p.kind !== 'user') throw new ApiError('forbidden', 'this route needs a user');
    const rows = await this.deps.db.inPlatform((tx) => this.users.memberships(tx, p.userId));
    return { items: rows.map((r) => ({ id: r.tenantId, slug: r.slug, name: r.name, role: r.role })) };
  }

  @Get(':tenantId')
  @Route('Get a tenant', 'viewer', { status: 200, standardSchema: TenantResponse })
  get(@Tenant() t: TenantContext) {
    return this.tenants.get(t);
  }

  @Patch(':tenantId')
  @Route('Update a tenant (name and mfaRequired: owner; commitConfirmSeconds: admin)', 'admin', {
    status: 200,
    standardSchema: TenantResponse,
  })
  update(@Tenant() t: TenantContext, @Body({ schema: UpdateTenantBody }) body: z.infer<typeof UpdateTenantBody>) {
    return this.tenants.update(t, body);
  }

  @Get(':tenantId/members')
  @Route('List members', 'viewer', { status: 200, standardSchema: MemberPage })
  members(@Tenant() t: TenantContext, @Query({ schema: ListQuery }) q: z.infer<typeof ListQuery>) {
    return this.tenants.listMembers(t, q);
  }

  @Get(':tenantId/members/:userId')
  @Route('Get a member', 'viewer', { status: 200, standardSchema: MemberResponse })
  member(@Tenant() t: TenantContext, @Param('userId', { schema: uuidParam }) userId: string) {
    return this.tenants.getMember(t, userId);
  }

  @Patch(':tenantId/members/:userId')
  @Route("Change a member's role", 'admin', { status: 200, standardSchema: MemberResponse })
  setRole(
    @Tenant() t: TenantContext,
    @Param('userId', { schema: uuidParam }) userId: string,
    @Body({ schema: UpdateMemberBody }) body: z.infer<typeof UpdateMemberBody>,
  ) {
    return this.tenants.setRole(t, userId, body.role);
  }

  @Delete(':tenantId/members/:userId')
  @Route('Remove a member', 'admin')
  @HttpCode(204)
  async remove(@Tenant() t: TenantContext, @Param('userId', { schema: uuidParam }) userId: string): Promise<void> {
    await this.tenants.removeMember(t, userId);
  }
}
