import { Module } from '@nestjs/common';
import { SiteTelemetryController } from './telemetry.controller';
import { TelemetryService } from './telemetry.service';

/**
 * Telemetry: history for the charts (downsampling and retention run in the worker). Gateways push samples and
 * fetch their poll targets through the gateway-link feature, which calls this service.
 */
@Module({
  controllers: [SiteTelemetryController],
  providers: [TelemetryService],
  exports: [TelemetryService],
})
export class TelemetryModule {}
