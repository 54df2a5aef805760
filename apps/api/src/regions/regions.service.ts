import { Inject, Injectable } from '@nestjs/common';
import { RegionsRepository } from '@backplane/db';
import type { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { newSecret, TokenService } from '../auth/tokens';
import { ApiError } from '../common/api-error';
import type { Actor, Principal } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';
import { PkiService } from '../gateway-link/pki.service';
import {
  toGateway,
  toRegion,
  type CreateRegionBody,
  type ListRegionsQuery,
  type UpdateRegionBody,
} from './regions.schemas';

@Injectable()
export class RegionsService {
  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly regions: RegionsRepository,
    private readonly tokens: TokenService,
    private readonly audit: AuditService,
    private readonly pki: PkiService,
  ) {}

  private get downAfter(): number {
    return this.deps.config.GATEWAY_DOWN_AFTER;
  }

  create(actor: Actor, body: z.infer<typeof CreateRegionBody>) {
    return this.deps.db.inPlatform(async (tx) => {
      const out = toRegion(await this.regions.create(tx, body));
      await this.audit.record(tx, actor, {
        action: 'region.created',
        targetType: 'region',
        targetId: out.id,
        after: out,
      });
      return out;
    });
  }

  async list(q: z.infer<typeof ListRegionsQuery>) {
    const res = await this.deps.db.inPlatform((tx) => this.regions.list(tx, q));
    return { items: res.items.map(toRegion), nextCursor: res.nextCursor };
  }

  async get(id: string) {
    const row = await this.deps.db.inPlatform((tx) => this.regions.get(tx, id));
    if (!row) throw ApiError.notFound('region');
    return toRegion(row);
  }

  update(actor: Actor, id: string, body: z.infer<typeof UpdateRegionBody>) {
    return this.deps.db.inPlatform(async (tx) => {
      const before = await this.regions.get(tx, id);
      if (!before) throw ApiError.notFound('region');
      const out = toRegion((await this.regions.update(tx, id, body))!);
      await this.audit.record(tx, actor, {
        action: 'region.updated',
        targetType: 'region',
        targetId: id,
        before: toRegion(before),
        after: out,
      });
      return out;
    });
  }

  delete(actor: Actor, id: string) {
    return this.deps.db.inPlatform(async (tx) => {
      const res = await this.regions.delete(tx, id);
      if (res === 'in_use') throw new ApiError('conflict', 'the region still has gateways; revoke them first');
      if (!res) throw ApiError.notFound('region');
      await this.audit.record(tx, actor, {
        action: 'region.deleted',
        targetType: 'region',
        targetId: id,
        before: toRegion(res),
      });
    });
  }

  enrollmentToken(actor: Actor, principal: Principal, regionId: string, ttlMinutes: number) {
    const token = newSecret('bpe');
    const expiresAt = new Date(Date.now() + ttlMinutes * 60_000);
    return this.deps.db.inPlatform(async (tx) => {
      if (!(await this.regions.get(tx, regionId))) throw ApiError.notFound('region');
      const id = await this.regions.addEnrollmentToken(
        tx,
        regionId,
        this.tokens.hash(token),
        expiresAt,
        principal.kind === 'user' ? principal.userId : '',
      );
      await this.audit.record(tx, actor, {
        action: 'gateway_enrollment_token.created',
        targetType: 'region',
        targetId: regionId,
        after: { tokenId: id, expiresAt: expiresAt.toISOString() },
      });
      return { id, token, expiresAt: expiresAt.toISOString() };
    });
  }

  async gateways(regionId: string | undefined) {
    const rows = await this.deps.db.inPlatform((tx) => this.regions.listGateways(tx, regionId, this.downAfter));
    return { items: rows.map(toGateway), nextCursor: null };
  }

  revokeGateway(actor: Actor, id: string) {
    return this.deps.db.inPlatform(async (tx) => {
      const row = await this.regions.revokeGateway(tx, id, this.downAfter);
      if (!row) throw ApiError.notFound('gateway');
      // Its server certificates go on the CRL in the same transaction.
      const revokedCertificates = await this.pki.revokeGateway(tx, id);
      await this.audit.record(tx, actor, {
        action: 'gateway.revoked',
        targetType: 'gateway',
        targetId: id,
        after: { revokedCertificates },
      });
    });
  }
}
