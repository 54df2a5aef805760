import { applyDecorators } from '@nestjs/common';
import { ApiOperation, ApiResponse, type ApiResponseOptions } from '@nestjs/swagger';
import type { TenantRole } from '@backplane/db';
import { PlatformOperator, TenantAccess } from './request';

/**
 * What every route of a feature controller states: its OpenAPI summary, who may call it (a
 * tenant role, or `platform` for platform operators) and, when it returns a body, the success
 * response. `@Route('Get a site', 'viewer', { status: 200, standardSchema: SiteResponse })` is
 * `@ApiOperation`, `@TenantAccess` and `@ApiResponse` in one line.
 */
export const Route = (summary: string, access: TenantRole | 'platform', response?: ApiResponseOptions) =>
  applyDecorators(
    ApiOperation({ summary }),
    access === 'platform' ? PlatformOperator() : TenantAccess(access),
    ...(response ? [ApiResponse(response)] : []),
  );
