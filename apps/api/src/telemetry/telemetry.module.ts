import { Module } from '@nestjs/common';
import { SiteTelemetryController } from './telemetry.controller';
import { TelemetryMaintenance } from './telemetry.maintenance';
import { TelemetryService } from './telemetry.service';

/**
 * Telemetry: history for the charts, downsampling and retention. Gateways push samples and
 * fetch their poll targets through the gateway-link feature, which calls this service.
 */
@Module({
  controllers: [SiteTelemetryController],
  providers: [TelemetryService, TelemetryMaintenance],
  exports: [TelemetryService, TelemetryMaintenance],
})
export class TelemetryModule {}
