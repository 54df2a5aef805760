import { Module } from '@nestjs/common';
import { GatewayLinkModule } from '../gateway-link/gateway-link.module';
import { RegionsModule } from '../regions/regions.module';
import { OnboardingController, RouterEndpointsController } from './onboarding.controller';
import { OnboardingService } from './onboarding.service';

/** Onboarding command, the router-facing script/CA/poll endpoints and site health. */
@Module({
  imports: [GatewayLinkModule, RegionsModule],
  controllers: [OnboardingController, RouterEndpointsController],
  providers: [OnboardingService],
  exports: [OnboardingService],
})
export class OnboardingModule {}
