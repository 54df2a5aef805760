import { RelayClientError } from './errors';
import { GatewayLinkRecord, gatewayKey, LinkParseError, parseJsonAs, TunnelRecord, tunnelKey } from './schemas';

/** The part of a Redis client the registry reader needs (ioredis fits). */
export interface RegistryRedis {
  get(key: string): Promise<string | null>;
}

export interface SiteRoute {
  readonly tunnel: TunnelRecord;
  readonly gateway: GatewayLinkRecord;
}

/**
 * Reads the tunnel registry the gateways keep in Redis: which gateway holds a site's tunnel
 * (`<prefix>tunnel:<siteId>`) and how to reach that gateway (`<prefix>gateway:<id>`). Every
 * record is parsed against its schema; a bad one is a {@link LinkParseError}, never a cast.
 */
export class TunnelRegistry {
  constructor(
    private readonly redis: RegistryRedis,
    private readonly prefix: string,
  ) {}

  /** The site's tunnel record; undefined when no gateway holds it (offline). */
  async tunnel(siteId: string): Promise<TunnelRecord | undefined> {
    const raw = await this.redis.get(tunnelKey(this.prefix, siteId));
    return raw === null ? undefined : parseJsonAs(TunnelRecord, raw, `tunnel registry record of site ${siteId}`);
  }

  async gateway(gatewayId: string): Promise<GatewayLinkRecord | undefined> {
    const raw = await this.redis.get(gatewayKey(this.prefix, gatewayId));
    return raw === null ? undefined : parseJsonAs(GatewayLinkRecord, raw, `link record of gateway ${gatewayId}`);
  }

  /** Where a call for the site goes; {@link RelayClientError} `site_offline`/`gateway_unreachable`/`bad_record` otherwise. */
  async route(siteId: string): Promise<SiteRoute> {
    try {
      const tunnel = await this.tunnel(siteId);
      if (!tunnel) throw new RelayClientError('site_offline', 'the site is offline: no gateway holds its tunnel');
      const gateway = await this.gateway(tunnel.gatewayId);
      if (!gateway)
        throw new RelayClientError('gateway_unreachable', 'the gateway holding the tunnel is not reachable');
      return { tunnel, gateway };
    } catch (err) {
      if (err instanceof LinkParseError) throw new RelayClientError('bad_record', err.message);
      throw err;
    }
  }
}
