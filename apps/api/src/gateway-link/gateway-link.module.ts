import { Module, type DynamicModule } from '@nestjs/common';
import { API_DEPS, type ApiDeps } from '../deps';
import { LiveController } from '../live/live.controller';
import { LiveService } from '../live/live.service';
import { GatewayLinkService, GatewaySitesController } from './gateway-link.controller';
import { PkiController } from './pki.controller';
import { PkiService } from './pki.service';
import { RegionSelectionService } from './region-selection.service';
import { GEO_LOCATOR, GeoLocator } from './region-selector';
import { loadTunnelVerifierKey } from '@backplane/config';
import { VERIFIER_KEY } from './verifier-key';

/** The gateway link (site sync, tunnel events) and the live routes that use it. */
@Module({})
export class GatewayLinkModule {
  static register(deps: ApiDeps): DynamicModule {
    return {
      module: GatewayLinkModule,
      controllers: [GatewaySitesController, LiveController, PkiController],
      providers: [
        { provide: API_DEPS, useValue: deps },
        {
          provide: VERIFIER_KEY,
          useValue: loadTunnelVerifierKey(deps.config.TUNNEL_VERIFIER_KEY, deps.config.DATA_DIR),
        },
        { provide: GEO_LOCATOR, useValue: GeoLocator.fromFile(deps.config.GEOIP_DATABASE) },
        GatewayLinkService,
        LiveService,
        RegionSelectionService,
        PkiService,
      ],
      exports: [RegionSelectionService, PkiService],
    };
  }
}
