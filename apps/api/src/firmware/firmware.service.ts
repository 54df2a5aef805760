import { Inject, Injectable } from '@nestjs/common';
import { FirmwarePolicyRepository } from '@backplane/db';
import { effectiveFirmwarePolicy } from '@backplane/jobs';
import type { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { ApiError } from '../common/api-error';
import type { TenantContext } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';
import {
  toFirmwarePolicyResponse,
  type FirmwarePolicyBody,
  type FirmwarePolicyResponse,
  type SiteFirmwareResponse,
} from './firmware.schemas';

/** The tenant's firmware policy (issue 18, ADR 0098): what routeros-upgrade jobs may install. */
@Injectable()
export class FirmwareService {
  private readonly repo = new FirmwarePolicyRepository();

  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly audit: AuditService,
  ) {}

  async get(t: TenantContext): Promise<z.infer<typeof FirmwarePolicyResponse>> {
    return toFirmwarePolicyResponse(await this.deps.db.inTenant(t.scope, (tx) => this.repo.get(tx)));
  }

  async put(
    t: TenantContext,
    body: z.infer<typeof FirmwarePolicyBody>,
  ): Promise<z.infer<typeof FirmwarePolicyResponse>> {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const before = toFirmwarePolicyResponse(await this.repo.get(tx));
      const after = toFirmwarePolicyResponse(await this.repo.put(tx, body));
      await this.audit.record(tx, t.actor, {
        action: 'firmware-policy.updated',
        targetType: 'tenant',
        targetId: t.scope.tenantId,
        before: { channel: before.channel, pinnedVersion: before.pinnedVersion, tags: before.tags },
        after: { channel: after.channel, pinnedVersion: after.pinnedVersion, tags: after.tags },
      });
      return after;
    });
  }

  /** The rule that applies to one site (what its next routeros-upgrade job will follow). */
  async forSite(t: TenantContext, siteId: string): Promise<z.infer<typeof SiteFirmwareResponse>> {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const tags = await this.repo.siteTags(tx, siteId);
      if (tags === null) throw ApiError.notFound('site');
      const eff = effectiveFirmwarePolicy(await this.repo.get(tx), tags);
      return { siteId, channel: eff.channel, pinnedVersion: eff.pinnedVersion, source: eff.source };
    });
  }
}
