import { Module } from '@nestjs/common';
import { SitesController } from './sites.controller';
import { SiteListCache } from './site-list-cache';
import { SitesService } from './sites.service';

/** A tenant's sites: create, list (with the fleet summary), update, delete. */
@Module({ controllers: [SitesController], providers: [SitesService, SiteListCache] })
export class SitesModule {}
