import { Injectable } from '@nestjs/common';
import { ApprovalsRepository, MaintenanceWindowsRepository, type TenantRole, type TenantTx } from '@backplane/db';
import { jobsRepo, windowState, type JobKind, type JobRow, type WindowState } from '@backplane/jobs';
import { ApiError } from '../common/api-error';
import { roleAtLeast } from '../common/request';
import { ApprovalPolicy, type ApprovalRule } from './changes.schemas';

/** Kinds that change a router (held for maintenance windows, subject to approval rules). */
export const CHANGING_KINDS: readonly JobKind[] = [
  'apply-config',
  'run-command',
  'restore',
  'reboot',
  'recreate-tunnel',
  'routeros-upgrade',
];

/** Which approval rules a change matches and the role they ask of the approver (highest wins). */
export function approvalNeeded(
  rules: readonly ApprovalRule[],
  change: { kind: string; siteTags: readonly (readonly string[])[] },
): { role: TenantRole; reasons: string[] } | undefined {
  let role: TenantRole | undefined;
  const reasons: string[] = [];
  for (const [i, r] of rules.entries()) {
    if (r.kinds && !r.kinds.includes(change.kind as (typeof r.kinds)[number])) continue;
    if (r.tags && !change.siteTags.some((tags) => tags.some((t) => r.tags!.includes(t)))) continue;
    if (r.minSites !== undefined && change.siteTags.length < r.minSites) continue;
    const why = [
      r.kinds ? `kind ${change.kind}` : 'any change',
      r.tags ? `tags ${r.tags.join(',')}` : '',
      r.minSites !== undefined ? `${change.siteTags.length} site(s) ≥ ${r.minSites}` : '',
    ]
      .filter(Boolean)
      .join(', ');
    reasons.push(`rule ${i + 1}: ${why} → ${r.approverRole}`);
    if (!role || roleAtLeast(r.approverRole, role)) role = r.approverRole;
  }
  return role ? { role, reasons } : undefined;
}

/**
 * What every job create passes before it runs (docs/adr/0089, 0090): the tenant's approval
 * policy and the sites' maintenance windows. One instance per api (JobsModule); `now` is
 * its clock (tests set their own).
 */
@Injectable()
export class ChangeGate {
  private readonly approvals = new ApprovalsRepository();
  private readonly windows = new MaintenanceWindowsRepository();
  now: () => Date = () => new Date();

  private isChanging(kind: string, payload: unknown): boolean {
    if (!CHANGING_KINDS.includes(kind as JobKind)) return false;
    return !(kind === 'run-command' && /\/print$/.test((payload as { command?: string } | null)?.command ?? ''));
  }

  /** The approval a change of `kind` on sites with these tags needs, under the tenant's policy. */
  async approvalFor(tx: TenantTx, kind: string, siteTags: readonly (readonly string[])[]) {
    const stored = await this.approvals.policy(tx);
    if (!stored) return undefined;
    const policy = ApprovalPolicy.parse({ rules: stored.rules, ttlSeconds: stored.ttlSeconds });
    const need = approvalNeeded(policy.rules, { kind, siteTags });
    return need ? { ...need, ttlSeconds: policy.ttlSeconds } : undefined;
  }

  /**
   * A job asked for directly (not through a plan) that the policy says needs approval: 409
   * `approval_required` (an approver must see a plan first).
   */
  async requireNoApproval(tx: TenantTx, kind: string, payload: unknown, siteIds: readonly string[]): Promise<void> {
    if (!this.isChanging(kind, payload)) return;
    // No policy, nothing to match: a 10,000-site bulk reads no tags (issue 19).
    if (!(await this.approvals.policy(tx))) return;
    const tags = await this.windows.tagsOfMany(tx, siteIds);
    const need = await this.approvalFor(tx, kind, tags);
    if (!need) return;
    throw new ApiError(
      'approval_required',
      `this change needs approval by ${need.role} (${need.reasons.join('; ')}): ${
        kind === 'apply-config'
          ? 'make a plan (POST /plans) and apply it; the approver sees the plan'
          : 'only apply-config changes can be planned and approved so far'
      }`,
    );
  }

  stateOf(
    windows: readonly { id: string; name: string; days: number[]; startMinute: number; durationMinutes: number }[],
    tz: string,
  ): WindowState {
    return windowState(windows, tz, this.now());
  }

  /**
   * Holds a new changing job when its site has maintenance windows and none is open now:
   * `waiting` with the reason until the next opening (the reconciler releases it then).
   * Returns the held row, or undefined when it may run now.
   */
  async holdIfClosed(tx: TenantTx, row: JobRow): Promise<JobRow | undefined> {
    if (!this.isChanging(row.kind, row.payload)) return undefined;
    const site = await this.windows.forSite(tx, row.siteId);
    if (!site) return undefined;
    const state = this.stateOf(site.windows, site.timezone);
    if (state.open || !state.next) return undefined;
    const reason = `waiting for maintenance window "${state.next.name}" (opens ${state.next.opensAt.toISOString()}, ${site.timezone})`;
    await this.windows.holdJob(tx, row.id, state.next.opensAt, reason);
    return jobsRepo.get(tx, row.id);
  }

  /**
   * `holdIfClosed` for a batch's new jobs: the ids held for a window. A tenant without any
   * maintenance window pays one query however many sites (issue 19's set-based fan-out).
   */
  async holdManyIfClosed(
    tx: TenantTx,
    kind: string,
    payload: unknown,
    jobs: readonly { id: string; siteId: string }[],
  ): Promise<Set<string>> {
    const held = new Set<string>();
    if (!this.isChanging(kind, payload) || !(await this.windows.any(tx))) return held;
    for (const j of jobs) {
      const row = await this.holdIfClosed(tx, { ...j, kind, payload } as JobRow);
      if (row) held.add(j.id);
    }
    return held;
  }

  /** Whether a job may be queued now (false while it is held for a window). */
  async runnable(tx: TenantTx, jobId: string): Promise<boolean> {
    const nb = await this.windows.notBefore(tx, jobId);
    return nb === null || nb.getTime() <= Date.now();
  }
}
