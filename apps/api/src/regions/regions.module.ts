import { Module } from '@nestjs/common';
import { API_DEPS, type ApiDeps } from '../deps';
import { GatewayLinkModule } from '../gateway-link/gateway-link.module';
import { RegionSelectionService } from './region-selection.service';
import { GEO_LOCATOR, GeoLocator } from './region-selector';
import { RegionsController } from './regions.controller';
import { RegionsService } from './regions.service';

/**
 * Regions and their gateways as platform operators manage them (enrollment tokens, revoke),
 * and the choice of a site's region by the GeoIP location of its router.
 */
@Module({
  imports: [GatewayLinkModule],
  controllers: [RegionsController],
  providers: [
    RegionsService,
    RegionSelectionService,
    {
      provide: GEO_LOCATOR,
      useFactory: (deps: ApiDeps) => GeoLocator.fromFile(deps.config.GEOIP_DATABASE),
      inject: [API_DEPS],
    },
  ],
  exports: [RegionSelectionService],
})
export class RegionsModule {}
