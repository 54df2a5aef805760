import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { z } from 'zod';
import { Tenant, type TenantContext } from '../common/request';
import { Route } from '../common/route';
import { ApiErrors, uuidParam } from '../common/validation';
import {
  AlertCountsResponse,
  AlertPage,
  AlertResponse,
  AlertRulePage,
  AlertRuleResponse,
  ChannelPage,
  ChannelResponse,
  CreateAlertRuleBody,
  CreateChannelBody,
  CreatedChannelResponse,
  DeliveryDetailResponse,
  DeliveryPage,
  DeliveryResponse,
  ListAlertsQuery,
  ListDeliveriesQuery,
  ListQuery,
  RotateSecretBody,
  SilenceAlertBody,
  TestSendResponse,
  UpdateAlertRuleBody,
  UpdateChannelBody,
} from './alerts.schemas';
import { AlertsService } from './alerts.service';

@ApiTags('alerts')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/tenants/:tenantId/alerts')
export class AlertsController {
  constructor(private readonly svc: AlertsService) {}

  /** Open, acknowledged and resolved alerts (history), newest first; filter and search. */
  @Get()
  @Route('List alerts', 'viewer', { status: 200, standardSchema: AlertPage })
  list(@Tenant() t: TenantContext, @Query({ schema: ListAlertsQuery }) q: z.infer<typeof ListAlertsQuery>) {
    return this.svc.listAlerts(t, q);
  }

  /** Firing alerts per site (the fleet page). */
  @Get('counts')
  @Route('Firing alerts per site', 'viewer', { status: 200, standardSchema: AlertCountsResponse })
  counts(@Tenant() t: TenantContext) {
    return this.svc.counts(t);
  }

  @Get(':alertId')
  @Route('Get an alert', 'viewer', { status: 200, standardSchema: AlertResponse })
  get(@Tenant() t: TenantContext, @Param('alertId', { schema: uuidParam }) id: string) {
    return this.svc.getAlert(t, id);
  }

  @Post(':alertId/acknowledge')
  @Route('Acknowledge an alert', 'operator')
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: AlertResponse })
  acknowledge(@Tenant() t: TenantContext, @Param('alertId', { schema: uuidParam }) id: string) {
    return this.svc.acknowledge(t, id);
  }

  /** Holds back notifications about this alert until a time (null lifts it). */
  @Post(':alertId/silence')
  @Route('Silence an alert until a time', 'operator')
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: AlertResponse })
  silence(
    @Tenant() t: TenantContext,
    @Param('alertId', { schema: uuidParam }) id: string,
    @Body({ schema: SilenceAlertBody }) b: z.infer<typeof SilenceAlertBody>,
  ) {
    return this.svc.silence(t, id, b.until);
  }
}

@ApiTags('alerts')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/tenants/:tenantId/alert-rules')
export class AlertRulesController {
  constructor(private readonly svc: AlertsService) {}

  @Get()
  @Route('List alert rules', 'viewer', { status: 200, standardSchema: AlertRulePage })
  list(@Tenant() t: TenantContext, @Query({ schema: ListQuery }) q: z.infer<typeof ListQuery>) {
    return this.svc.listRules(t, q);
  }

  @Post()
  @Route('Create an alert rule', 'admin', { status: 201, standardSchema: AlertRuleResponse })
  create(@Tenant() t: TenantContext, @Body({ schema: CreateAlertRuleBody }) b: z.infer<typeof CreateAlertRuleBody>) {
    return this.svc.createRule(t, b);
  }

  @Get(':ruleId')
  @Route('Get an alert rule', 'viewer', { status: 200, standardSchema: AlertRuleResponse })
  get(@Tenant() t: TenantContext, @Param('ruleId', { schema: uuidParam }) id: string) {
    return this.svc.getRule(t, id);
  }

  @Patch(':ruleId')
  @Route('Change an alert rule', 'admin', { status: 200, standardSchema: AlertRuleResponse })
  update(
    @Tenant() t: TenantContext,
    @Param('ruleId', { schema: uuidParam }) id: string,
    @Body({ schema: UpdateAlertRuleBody }) b: z.infer<typeof UpdateAlertRuleBody>,
  ) {
    return this.svc.updateRule(t, id, b);
  }

  @Delete(':ruleId')
  @Route('Delete an alert rule', 'admin')
  @HttpCode(204)
  async remove(@Tenant() t: TenantContext, @Param('ruleId', { schema: uuidParam }) id: string): Promise<void> {
    await this.svc.deleteRule(t, id);
  }
}

@ApiTags('alerts')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/tenants/:tenantId/channels')
export class ChannelsController {
  constructor(private readonly svc: AlertsService) {}

  @Get()
  @Route('List notification channels', 'operator', { status: 200, standardSchema: ChannelPage })
  list(@Tenant() t: TenantContext, @Query({ schema: ListQuery }) q: z.infer<typeof ListQuery>) {
    return this.svc.listChannels(t, q);
  }

  /** Webhooks answer their signing secret once (Standard Webhooks `whsec_…`). */
  @Post()
  @Route('Create a notification channel', 'admin', { status: 201, standardSchema: CreatedChannelResponse })
  create(@Tenant() t: TenantContext, @Body({ schema: CreateChannelBody }) b: z.infer<typeof CreateChannelBody>) {
    return this.svc.createChannel(t, b);
  }

  @Get(':channelId')
  @Route('Get a notification channel', 'operator', { status: 200, standardSchema: ChannelResponse })
  get(@Tenant() t: TenantContext, @Param('channelId', { schema: uuidParam }) id: string) {
    return this.svc.getChannel(t, id);
  }

  @Patch(':channelId')
  @Route('Change a notification channel', 'admin', { status: 200, standardSchema: ChannelResponse })
  update(
    @Tenant() t: TenantContext,
    @Param('channelId', { schema: uuidParam }) id: string,
    @Body({ schema: UpdateChannelBody }) b: z.infer<typeof UpdateChannelBody>,
  ) {
    return this.svc.updateChannel(t, id, b);
  }

  @Delete(':channelId')
  @Route('Delete a notification channel', 'admin')
  @HttpCode(204)
  async remove(@Tenant() t: TenantContext, @Param('channelId', { schema: uuidParam }) id: string): Promise<void> {
    await this.svc.deleteChannel(t, id);
  }

  /** New signing secret; the previous one also signs (second signature) during the overlap. */
  @Post(':channelId/rotate-secret')
  @Route('Rotate a webhook signing secret', 'admin')
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: CreatedChannelResponse })
  rotate(
    @Tenant() t: TenantContext,
    @Param('channelId', { schema: uuidParam }) id: string,
    @Body({ schema: RotateSecretBody }) b: z.infer<typeof RotateSecretBody>,
  ) {
    return this.svc.rotateSecret(t, id, b.overlapSeconds);
  }

  /** Queues a `test` event for this channel only; its delivery shows in the delivery log. */
  @Post(':channelId/test')
  @Route('Send a test notification', 'admin')
  @HttpCode(202)
  @ApiResponse({ status: 202, standardSchema: TestSendResponse })
  test(@Tenant() t: TenantContext, @Param('channelId', { schema: uuidParam }) id: string) {
    return this.svc.sendTest(t, id);
  }

  @Get(':channelId/deliveries')
  @Route('Delivery log of a channel', 'operator', { status: 200, standardSchema: DeliveryPage })
  deliveries(
    @Tenant() t: TenantContext,
    @Param('channelId', { schema: uuidParam }) id: string,
    @Query({ schema: ListDeliveriesQuery }) q: z.infer<typeof ListDeliveriesQuery>,
  ) {
    return this.svc.listDeliveries(t, id, q);
  }

  @Get(':channelId/deliveries/:deliveryId')
  @Route('A delivery with its attempts', 'operator', { status: 200, standardSchema: DeliveryDetailResponse })
  delivery(
    @Tenant() t: TenantContext,
    @Param('channelId', { schema: uuidParam }) id: string,
    @Param('deliveryId', { schema: uuidParam }) deliveryId: string,
  ) {
    return this.svc.getDelivery(t, id, deliveryId);
  }

  /** Sends the same event (same id) to this channel again. */
  @Post(':channelId/deliveries/:deliveryId/replay')
  @Route('Replay a delivery', 'admin')
  @HttpCode(202)
  @ApiResponse({ status: 202, standardSchema: DeliveryResponse })
  replay(
    @Tenant() t: TenantContext,
    @Param('channelId', { schema: uuidParam }) id: string,
    @Param('deliveryId', { schema: uuidParam }) deliveryId: string,
  ) {
    return this.svc.replay(t, id, deliveryId);
  }
}
