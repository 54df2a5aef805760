import { Injectable } from '@nestjs/common';
import { AuditRepository, type AuditEntryInput, type PlatformTx, type TenantTx } from '@backplane/db';
import type { Actor } from '../common/request';

export type AuditEvent = Omit<AuditEntryInput, keyof Actor>;

/**
 * Writes audit entries inside the transaction of the change they describe, so a change
 * and its record commit (or roll back) together. Callers pass only safe fields: no
 * password hashes, key hashes, tokens or secrets ever reach before/after.
 */
@Injectable()
export class AuditService {
  constructor(private readonly repo: AuditRepository) {}

  record(tx: TenantTx | PlatformTx, actor: Actor, event: AuditEvent): Promise<void> {
    return this.repo.append(tx, { ...actor, ...event });
  }
}
