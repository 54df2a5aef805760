import { Inject, Injectable } from '@nestjs/common';
import { BackupsRepository, SitesRepository, type BackupRow, type IdempotencyClaim } from '@backplane/db';
import { exportWithoutHeader } from '@backplane/jobs';
import { createTwoFilesPatch } from 'diff';
import { ApiError } from '../common/api-error';
import type { TenantContext } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';
import { JobsService } from '../jobs/jobs.service';

const toOut = (r: BackupRow) => ({
  id: r.id,
  siteId: r.site_id,
  jobId: r.job_id,
  contentHash: r.content_hash,
  size: r.size,
  routerosVersion: r.routeros_version,
  createdAt: r.created_at.toISOString(),
  lastConfirmedAt: r.last_confirmed_at.toISOString(),
});

/** Stored backups (encrypted exports, one row per distinct configuration), diff and restore. */
@Injectable()
export class BackupsService {
  private readonly sites = new SitesRepository();
  private readonly backups: BackupsRepository;

  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly jobs: JobsService,
  ) {
    this.backups = new BackupsRepository(deps.keyring);
  }

  async list(t: TenantContext, siteId: string, page: { limit: number; cursor?: string | undefined }) {
    const res = await this.deps.db.inTenant(t.scope, async (tx) => {
      if (!(await this.sites.exists(tx, siteId))) throw ApiError.notFound('site');
      return this.backups.list(tx, siteId, page);
    });
    return { items: res.items.map(toOut), nextCursor: res.nextCursor };
  }

  private async content(t: TenantContext, id: string): Promise<{ row: BackupRow; text: string }> {
    const found = await this.deps.db.inTenant(t.scope, (tx) => this.backups.withContent(tx, id));
    if (!found) throw ApiError.notFound('backup');
    return found;
  }

  async get(t: TenantContext, id: string) {
    const { row, text } = await this.content(t, id);
    return { ...toOut(row), content: text };
  }

  /** Unified diff between two versions of the same site (date header ignored). */
  async diff(t: TenantContext, from: string, to: string) {
    const a = await this.content(t, from);
    const b = await this.content(t, to);
    if (a.row.site_id !== b.row.site_id)
      throw new ApiError('validation_failed', 'the backups belong to different sites');
    return {
      from: toOut(a.row),
      to: toOut(b.row),
      diff: createTwoFilesPatch(
        `${a.row.created_at.toISOString()}.rsc`,
        `${b.row.created_at.toISOString()}.rsc`,
        exportWithoutHeader(a.text),
        exportWithoutHeader(b.text),
      ),
    };
  }

  async restore(t: TenantContext, id: string, idempotency: IdempotencyClaim | undefined) {
    const { row } = await this.content(t, id);
    return this.jobs.enqueue(t, row.site_id, { kind: 'restore', payload: { backupId: id } }, idempotency);
  }
}
