import { Inject, Injectable } from '@nestjs/common';
import { RegionsRepository } from '@backplane/db';
import { AuditService } from '../audit/audit.service';
import { newSecret, TokenService } from '../auth/tokens';
import { ApiError } from '../common/api-error';
import { API_DEPS, type ApiDeps } from '../deps';
import { toGateway } from '../regions/regions.schemas';

/** A gateway trades its one-time enrollment token for a credential, then heartbeats with it. */
@Injectable()
export class GatewayEnrollmentService {
  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly regions: RegionsRepository,
    private readonly tokens: TokenService,
    private readonly audit: AuditService,
  ) {}

  private get downAfter(): number {
    return this.deps.config.GATEWAY_DOWN_AFTER;
  }

  enroll(token: string, name: string, sourceIp: string, requestId: string) {
    const credential = newSecret('bpg');
    return this.deps.db.inPlatform(async (tx) => {
      const regionId = await this.regions.consumeEnrollmentToken(tx, this.tokens.hash(token));
      if (!regionId) throw new ApiError('unauthorized', 'enrollment token is not valid, expired or already used');
      const gw = await this.regions.createGateway(
        tx,
        { regionId, name, credentialHash: this.tokens.hash(credential) },
        this.downAfter,
      );
      await this.audit.record(
        tx,
        { actorType: 'gateway', actorId: gw.id, actorLabel: name, sourceIp, requestId },
        { action: 'gateway.enrolled', targetType: 'gateway', targetId: gw.id, after: { regionId, name } },
      );
      return { gateway: toGateway(gw), credential };
    });
  }

  async heartbeat(gatewayId: string, version: string | undefined) {
    const row = await this.deps.db.inPlatform((tx) =>
      this.regions.heartbeat(tx, gatewayId, version ?? null, this.downAfter),
    );
    if (!row) throw new ApiError('unauthorized', 'gateway credential is not valid');
    return toGateway(row);
  }
}
