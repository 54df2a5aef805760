import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { z } from 'zod';
import { Tenant, type TenantContext } from '../common/request';
import { Route } from '../common/route';
import { ApiErrors, uuidParam } from '../common/validation';
import {
  ApiKeyPage,
  ApiKeyResponse,
  CreateApiKeyBody,
  CreatedApiKeyResponse,
  ListApiKeysQuery,
  RenewApiKeyBody,
} from './api-keys.schemas';
import { ApiKeysService } from './api-keys.service';

@ApiTags('api-keys')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/tenants/:tenantId/api-keys')
export class ApiKeysController {
  constructor(private readonly keys: ApiKeysService) {}

  @Get()
  @Route('List API keys', 'admin', { status: 200, standardSchema: ApiKeyPage })
  list(@Tenant() t: TenantContext, @Query({ schema: ListApiKeysQuery }) q: z.infer<typeof ListApiKeysQuery>) {
    return this.keys.list(t, q);
  }

  /** Not idempotent on purpose: replaying the answer would mean keeping the secret. */
  @Post()
  @Route('Create an API key', 'admin', { status: 201, standardSchema: CreatedApiKeyResponse })
  create(@Tenant() t: TenantContext, @Body({ schema: CreateApiKeyBody }) body: z.infer<typeof CreateApiKeyBody>) {
    return this.keys.create(t, body);
  }

  @Get(':keyId')
  @Route('Get an API key', 'admin', { status: 200, standardSchema: ApiKeyResponse })
  get(@Tenant() t: TenantContext, @Param('keyId', { schema: uuidParam }) id: string) {
    return this.keys.get(t, id);
  }

  /** Sets a new expiry (default 90 days from now); only for keys at most your role. */
  @Post(':keyId/renew')
  @Route('Renew an API key (new expiry)', 'admin')
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: ApiKeyResponse })
  renew(
    @Tenant() t: TenantContext,
    @Param('keyId', { schema: uuidParam }) id: string,
    @Body({ schema: RenewApiKeyBody }) body: z.infer<typeof RenewApiKeyBody>,
  ) {
    return this.keys.renew(t, id, body);
  }

  /** Revokes the key at once; it stays listed with `revokedAt`. */
  @Delete(':keyId')
  @Route('Revoke an API key', 'admin')
  @HttpCode(204)
  async revoke(@Tenant() t: TenantContext, @Param('keyId', { schema: uuidParam }) id: string): Promise<void> {
    await this.keys.revoke(t, id);
  }
}
