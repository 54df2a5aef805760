import { Module } from '@nestjs/common';
import { TelemetryModule } from '../telemetry/telemetry.module';
import { GatewayEnrollmentService } from './gateway-enrollment.service';
import { GatewayLinkController } from './gateway-link.controller';
import { GatewayLinkService } from './gateway-link.service';
import { PkiService } from './pki.service';

/**
 * The gateway-facing side of the api (`/api/v1/gateway/*`): enrollment, heartbeat, server
 * certificates (the deployment PKI), site credential sync, tunnel events and telemetry
 * ingest. The offline sweep runs in the worker (apps/worker/src/schedules).
 */
@Module({
  imports: [TelemetryModule],
  controllers: [GatewayLinkController],
  providers: [GatewayEnrollmentService, GatewayLinkService, PkiService],
  exports: [PkiService],
})
export class GatewayLinkModule {}
