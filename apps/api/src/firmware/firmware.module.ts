import { Module } from '@nestjs/common';
import { FirmwareController } from './firmware.controller';
import { FirmwareService } from './firmware.service';

/** Firmware policy: update channel and pinned version per tenant and per tag (ADR 0098). */
@Module({
  controllers: [FirmwareController],
  providers: [FirmwareService],
})
export class FirmwareModule {}
