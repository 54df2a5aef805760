import { Module, type DynamicModule } from '@nestjs/common';
import { API_DEPS, type ApiDeps } from '../deps';
import { GatewayTelemetryController, SiteTelemetryController } from './telemetry.controller';
import { TelemetryService } from './telemetry.service';

/** Telemetry: gateway ingest and poll targets, history for the charts (downsampling and retention run in the worker). */
@Module({})
export class TelemetryModule {
  static register(deps: ApiDeps): DynamicModule {
    return {
      module: TelemetryModule,
      controllers: [GatewayTelemetryController, SiteTelemetryController],
      providers: [{ provide: API_DEPS, useValue: deps }, TelemetryService],
    };
  }
}
