import { Body, Controller, Post } from '@nestjs/common';
import { ApiResponse, ApiTags, ApiOperation } from '@nestjs/swagger';
import type { z } from 'zod';
import { ApiErrors } from '../common/validation';
import { Public } from '../common/request';
import { SetupBody, SetupResponse } from './auth.dto';
import { SetupService } from './setup.service';

@ApiTags('setup')
@ApiErrors()
@Controller('api/v1/setup')
export class SetupController {
  constructor(private readonly setup: SetupService) {}

  /** Creates the first owner (a platform operator) and tenant with the one-time token from the log. */
  @Post()
  @ApiOperation({ summary: 'Create the first owner (one-time setup)' })
  @Public()
  @ApiResponse({ status: 201, standardSchema: SetupResponse })
  create(@Body({ schema: SetupBody }) body: z.infer<typeof SetupBody>): Promise<z.infer<typeof SetupResponse>> {
    const { setupToken, ...owner } = body;
    return this.setup.consume(setupToken, owner);
  }
}
