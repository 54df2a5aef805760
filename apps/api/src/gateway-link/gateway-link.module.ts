import { Module } from '@nestjs/common';
import { TelemetryModule } from '../telemetry/telemetry.module';
import { GatewayEnrollmentService } from './gateway-enrollment.service';
import { GatewayLinkController } from './gateway-link.controller';
import { GatewayLinkService } from './gateway-link.service';
import { GatewaySweep } from './gateway-sweep';
import { PkiService } from './pki.service';

/**
 * The gateway-facing side of the api (`/api/v1/gateway/*`): enrollment, heartbeat, server
 * certificates (the deployment PKI), site credential sync, tunnel events and telemetry
 * ingest; plus the offline sweep over gateways and tunnels.
 */
@Module({
  imports: [TelemetryModule],
  controllers: [GatewayLinkController],
  providers: [GatewayEnrollmentService, GatewayLinkService, PkiService, GatewaySweep],
  exports: [PkiService, GatewaySweep],
})
export class GatewayLinkModule {}
