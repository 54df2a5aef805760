import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, ApiTags, ApiOperation } from '@nestjs/swagger';
import type { z } from 'zod';
import { Tenant, TenantAccess, type TenantContext } from '../common/request';
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
  @ApiOperation({ summary: 'List API keys' })
  @TenantAccess('admin')
  @ApiResponse({ status: 200, standardSchema: ApiKeyPage })
  list(@Tenant() t: TenantContext, @Query({ schema: ListApiKeysQuery }) q: z.infer<typeof ListApiKeysQuery>) {
    return this.keys.list(t, q);
  }

  /** Not idempotent on purpose: replaying the answer would mean keeping the secret. */
  @Post()
  @ApiOperation({ summary: 'Create an API key' })
  @TenantAccess('admin')
  @ApiResponse({ status: 201, standardSchema: CreatedApiKeyResponse })
  create(@Tenant() t: TenantContext, @Body({ schema: CreateApiKeyBody }) body: z.infer<typeof CreateApiKeyBody>) {
    return this.keys.create(t, body);
  }

  @Get(':keyId')
  @ApiOperation({ summary: 'Get an API key' })
  @TenantAccess('admin')
  @ApiResponse({ status: 200, standardSchema: ApiKeyResponse })
  get(@Tenant() t: TenantContext, @Param('keyId', { schema: uuidParam }) id: string) {
    return this.keys.get(t, id);
  }

  /** Sets a new expiry (default 90 days from now); only for keys at most your role. */
  @Post(':keyId/renew')
  @ApiOperation({ summary: 'Renew an API key (new expiry)' })
  @TenantAccess('admin')
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
  @ApiOperation({ summary: 'Revoke an API key' })
  @TenantAccess('admin')
  @HttpCode(204)
  async revoke(@Tenant() t: TenantContext, @Param('keyId', { schema: uuidParam }) id: string): Promise<void> {
    await this.keys.revoke(t, id);
  }
}
