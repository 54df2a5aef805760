import { Module, type DynamicModule } from '@nestjs/common';
import { AuditRepository } from '@backplane/db';
import { AuditService } from '../audit/audit.service';
import { API_DEPS, type ApiDeps } from '../deps';
import { loadTunnelVerifierKey } from '@backplane/config';
import { PkiService } from '../gateway-link/pki.service';
import { RegionSelectionService } from '../gateway-link/region-selection.service';
import { GEO_LOCATOR, GeoLocator } from '../gateway-link/region-selector';
import { VERIFIER_KEY } from '../gateway-link/verifier-key';
import { OnboardingController, RouterEndpointsController } from './onboarding.controller';
import { OnboardingService } from './onboarding.service';

/** Onboarding command, the router-facing script/CA/poll endpoints and site health. */
@Module({})
export class OnboardingModule {
  static register(deps: ApiDeps): DynamicModule {
    return {
      module: OnboardingModule,
      controllers: [OnboardingController, RouterEndpointsController],
      providers: [
        { provide: API_DEPS, useValue: deps },
        {
          provide: VERIFIER_KEY,
          useValue: loadTunnelVerifierKey(deps.config.TUNNEL_VERIFIER_KEY, deps.config.DATA_DIR),
        },
        { provide: AuditRepository, useValue: new AuditRepository() },
        { provide: GEO_LOCATOR, useValue: GeoLocator.fromFile(deps.config.GEOIP_DATABASE) },
        AuditService,
        RegionSelectionService,
        PkiService,
        OnboardingService,
      ],
      exports: [OnboardingService],
    };
  }
}
