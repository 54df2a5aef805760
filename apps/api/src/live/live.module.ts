import { Module } from '@nestjs/common';
import { RegionsModule } from '../regions/regions.module';
import { LiveController } from './live.controller';
import { LiveService } from './live.service';

/** Live reads and actions on a site's router, relayed by the gateway that holds its tunnel. */
@Module({ imports: [RegionsModule], controllers: [LiveController], providers: [LiveService] })
export class LiveModule {}
