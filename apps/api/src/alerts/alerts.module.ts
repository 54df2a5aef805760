import { Module } from '@nestjs/common';
import { AlertRulesController, AlertsController, ChannelsController } from './alerts.controller';
import { AlertsService } from './alerts.service';

/** Alerts, alert rules and notification channels (issue 20; delivery runs in the worker). */
@Module({ controllers: [AlertsController, AlertRulesController, ChannelsController], providers: [AlertsService] })
export class AlertsModule {}
