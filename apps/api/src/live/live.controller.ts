import { Body, Controller, Get, HttpCode, Param, Post, Put, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { Tenant, type TenantContext } from '../common/request';
import { cursorQuery, pageOf, uuidParam } from '../common/validation';
import { RegionSelectionService } from '../regions/region-selection.service';
import { LiveService } from './live.service';
import { Route } from '../common/route';

const RouterCredentialsBody = z.strictObject({
  username: z.string().min(1).max(100),
  password: z.string().min(1).max(200),
});
const LogsQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).default(100) });
const EventsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: cursorQuery,
});
/** One tunnel connect/disconnect/refusal, as the gateway reported it (byte counts on disconnect). */
const TunnelEventsPage = pageOf(
  z.object({
    id: z.string(),
    type: z.string(),
    accepted: z.boolean().nullable(),
    reason: z.string().nullable(),
    sourceIp: z.string().nullable(),
    gatewayId: z.string().nullable(),
    bytesIn: z.number().nullable(),
    bytesOut: z.number().nullable(),
    durationSeconds: z.number().nullable(),
    at: z.string(),
  }),
);
const TrafficQuery = z.strictObject({ interface: z.string().min(1).max(100) });
const Rows = z.object({ items: z.array(z.record(z.string(), z.string())) });
const AssignRegionBody = z.strictObject({ publicIp: z.union([z.ipv4(), z.ipv6()]) });
const TunnelCredentials = z.object({ user: z.string(), password: z.string(), address: z.string() });

/**
 * Live reads and actions on a site's router, relayed by the gateway holding its tunnel.
 * Errors when the site cannot be reached: 503 `unavailable` with `details[0]` =
 * `{ path: 'reason', message: 'site_offline' | 'gateway_unreachable' | 'router_unreachable' | 'router_login_failed' | 'timeout' }`.
 */
@ApiTags('live')
@ApiBearerAuth()
@Controller('api/v1/tenants/:tenantId/sites/:siteId')
export class LiveController {
  constructor(
    private readonly live: LiveService,
    private readonly regions: RegionSelectionService,
  ) {}

  /** Assigns the nearest healthy region by the GeoIP location of the router's public address. */
  @Post('region')
  @Route("Assign a site's region by GeoIP", 'operator')
  @HttpCode(200)
  assignRegion(
    @Tenant() t: TenantContext,
    @Param('siteId', { schema: uuidParam }) id: string,
    @Body({ schema: AssignRegionBody }) body: z.infer<typeof AssignRegionBody>,
  ) {
    return this.regions.assign(t, id, body.publicIp);
  }

  @Get('live/identity')
  @Route("The router's identity (live)", 'viewer')
  async identity(@Tenant() t: TenantContext, @Param('siteId', { schema: uuidParam }) id: string) {
    const res = await this.live.call(t, id, { command: '/system/identity/print' });
    return { name: res.rows[0]?.['name'] ?? null };
  }

  @Get('live/interfaces')
  @Route("The router's interfaces (live)", 'viewer', { status: 200, standardSchema: Rows })
  async interfaces(@Tenant() t: TenantContext, @Param('siteId', { schema: uuidParam }) id: string) {
    const res = await this.live.call(t, id, {
      command: '/interface/print',
      proplist: ['.id', 'name', 'type', 'running', 'disabled', 'mtu', 'mac-address', 'rx-byte', 'tx-byte', 'comment'],
    });
    return { items: res.rows };
  }

  @Get('live/resources')
  @Route("The router's resources (live)", 'viewer')
  async resources(@Tenant() t: TenantContext, @Param('siteId', { schema: uuidParam }) id: string) {
    const res = await this.live.call(t, id, { command: '/system/resource/print' });
    return res.rows[0] ?? {};
  }

  @Get('live/logs')
  @Route("The router's recent log (live)", 'viewer', { status: 200, standardSchema: Rows })
  async logs(
    @Tenant() t: TenantContext,
    @Param('siteId', { schema: uuidParam }) id: string,
    @Query({ schema: LogsQuery }) q: z.infer<typeof LogsQuery>,
  ) {
    const res = await this.live.call(t, id, { command: '/log/print' });
    return { items: res.rows.slice(-q.limit) };
  }

  /** NDJSON: one line per new log entry until the client disconnects. */
  @Get('live/logs/stream')
  @Route("Follow the router's log (live stream)", 'viewer')
  async logStream(
    @Tenant() t: TenantContext,
    @Param('siteId', { schema: uuidParam }) id: string,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.pipe(t, id, { command: '/log/listen' }, req, reply);
  }

  /** NDJSON: `/interface/monitor-traffic` rows (one per second) until the client disconnects. */
  @Get('live/traffic')
  @Route("An interface's traffic (live)", 'viewer')
  async traffic(
    @Tenant() t: TenantContext,
    @Param('siteId', { schema: uuidParam }) id: string,
    @Query({ schema: TrafficQuery }) q: z.infer<typeof TrafficQuery>,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.pipe(
      t,
      id,
      { command: '/interface/monitor-traffic', attributes: { interface: q.interface } },
      req,
      reply,
    );
  }

  @Post('reboot')
  @Route('Reboot the router (a job)', 'operator')
  @HttpCode(202)
  async reboot(@Tenant() t: TenantContext, @Param('siteId', { schema: uuidParam }) id: string) {
    await this.live.call(t, id, { command: '/system/reboot' });
    return { rebooting: true };
  }

  @Get('tunnel')
  @Route("A site's tunnel status", 'viewer')
  async tunnel(@Tenant() t: TenantContext, @Param('siteId', { schema: uuidParam }) id: string) {
    const rec = await this.live.tunnel(t, id);
    return rec ? { online: true, ...rec } : { online: false };
  }

  @Get('tunnel/events')
  @Route("A site's tunnel events", 'viewer', { status: 200, standardSchema: TunnelEventsPage })
  events(
    @Tenant() t: TenantContext,
    @Param('siteId', { schema: uuidParam }) id: string,
    @Query({ schema: EventsQuery }) q: z.infer<typeof EventsQuery>,
  ) {
    return this.live.events(t, id, q.limit, q.cursor);
  }

  /** Issues (or rotates) the site's tunnel secret; the answer is the only time it is shown. */
  @Post('tunnel/credentials')
  @Route("Reveal a site's tunnel credentials", 'admin', { status: 201, standardSchema: TunnelCredentials })
  credentials(@Tenant() t: TenantContext, @Param('siteId', { schema: uuidParam }) id: string) {
    return this.live.issueTunnelCredentials(t, id);
  }

  /** The router API user the platform logs in with (stored encrypted). */
  @Put('router-credentials')
  @Route("Set the router's API credentials", 'admin')
  @HttpCode(204)
  async routerCredentials(
    @Tenant() t: TenantContext,
    @Param('siteId', { schema: uuidParam }) id: string,
    @Body({ schema: RouterCredentialsBody }) body: z.infer<typeof RouterCredentialsBody>,
  ): Promise<void> {
    await this.live.setRouterCredentials(t, id, body.username, body.password);
  }

  private async pipe(
    t: TenantContext,
    id: string,
    req: { command: string; attributes?: Record<string, string> },
    httpReq: FastifyRequest,
    reply: FastifyReply,
  ): Promise<void> {
    const abort = new AbortController();
    reply.raw.once('close', () => abort.abort()); // the caller hung up (or we are done)
    const body = await this.live.stream(t, id, req, abort.signal);
    reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        reply.raw.write(value);
      }
    } catch {
      // the client went away (abort) or the gateway did
    } finally {
      abort.abort();
      reply.raw.end();
    }
  }
}
