import { Injectable } from '@nestjs/common';
import {
  ApprovalsRepository,
  MaintenanceWindowsRepository,
  type MaintenanceWindowRow,
  type TenantRole,
  type TenantTx,
} from '@backplane/db';
import { jobsRepo, windowState, type JobKind, type JobRow, type WindowState } from '@backplane/jobs';
import { ApiError } from '../common/api-error';
import { roleAtLeast, type TenantContext } from '../common/request';
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

/** Why a job waits: the same words for a single create and a bulk. */
function holdReason(next: { name: string; opensAt: Date }, timezone: string): string {
  return `waiting for maintenance window "${next.name}" (opens ${next.opensAt.toISOString()}, ${timezone})`;
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

  /** The approval a change of `kind` with `payload` on these sites needs (none for a read-only one). */
  async approvalForSites(tx: TenantTx, kind: string, payload: unknown, siteIds: readonly string[]) {
    if (!this.isChanging(kind, payload)) return undefined;
    // No policy, nothing to match: a 10,000-site bulk reads no tags (issue 19).
    if (!(await this.approvals.policy(tx))) return undefined;
    const tags = await this.windows.tagsOfMany(tx, siteIds);
    return this.approvalFor(tx, kind, tags);
  }

  /** The person behind `t`: an API key counts as the member who created it (no approving one's own change by key). */
  async person(tx: TenantTx, t: TenantContext): Promise<{ key: string; label: string | null }> {
    const p = t.principal;
    if (p.kind === 'user') return { key: `user:${p.userId}`, label: p.email };
    if (p.kind === 'apiKey') {
      const owner = await this.approvals.apiKeyOwner(tx, p.apiKeyId);
      return { key: owner ? `user:${owner}` : `api_key:${p.apiKeyId}`, label: p.name };
    }
    return { key: `other:${t.actor.actorId ?? ''}`, label: t.actor.actorLabel ?? null };
  }

  /**
   * A job asked for directly (not through a plan) that the policy says needs approval: 409
   * `approval_required` (an approver must see a plan first).
   */
  async requireNoApproval(tx: TenantTx, kind: string, payload: unknown, siteIds: readonly string[]): Promise<void> {
    const need = await this.approvalForSites(tx, kind, payload, siteIds);
    if (!need) return;
    // Every changing kind can be planned (docs/adr/0088, 0107): the approver sees the plan.
    throw new ApiError(
      'approval_required',
      `this change needs approval by ${need.role} (${need.reasons.join('; ')}): make a plan (POST /plans, kind ${kind}) and apply it; the approver sees the plan`,
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
    await this.windows.holdJob(tx, row.id, state.next.opensAt, holdReason(state.next, site.timezone));
    return jobsRepo.get(tx, row.id);
  }

  /**
   * `holdIfClosed` for a batch's new jobs: the ids held for a window. Set-based whatever the
   * number of sites: one query for the tenant's windows (a tenant without any stops there),
   * one for the sites' timezones and tags, one UPDATE for every held job; the window state is
   * computed once per distinct (timezone, windows) pair (issue 19's fan-out).
   */
  async holdManyIfClosed(
    tx: TenantTx,
    kind: string,
    payload: unknown,
    jobs: readonly { id: string; siteId: string }[],
  ): Promise<Set<string>> {
    if (!this.isChanging(kind, payload) || jobs.length === 0) return new Set();
    const windows = await this.windows.all(tx);
    if (windows.length === 0) return new Set();
    const bySite = new Map<string, MaintenanceWindowRow[]>();
    const byTag = new Map<string, MaintenanceWindowRow[]>();
    for (const win of windows) {
      const [map, key] = win.siteId !== null ? [bySite, win.siteId] : [byTag, win.tag];
      if (key === null) continue;
      map.set(key, [...(map.get(key) ?? []), win]);
    }
    const sites = new Map(
      (
        await this.windows.sitesOf(
          tx,
          jobs.map((j) => j.siteId),
        )
      ).map((s) => [s.id, s]),
    );
    const states = new Map<string, WindowState>();
    const holds: { jobId: string; notBefore: Date; reason: string }[] = [];
    for (const j of jobs) {
      const site = sites.get(j.siteId);
      if (!site) continue;
      // The site's own windows and those of its tags, in id order (as forSite reads them).
      const mine = [...new Set([...(bySite.get(site.id) ?? []), ...site.tags.flatMap((t) => byTag.get(t) ?? [])])];
      if (mine.length === 0) continue;
      mine.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      const key = `${site.timezone}|${mine.map((m) => m.id).join(',')}`;
      let state = states.get(key);
      if (!state) states.set(key, (state = this.stateOf(mine, site.timezone)));
      if (state.open || !state.next) continue;
      holds.push({ jobId: j.id, notBefore: state.next.opensAt, reason: holdReason(state.next, site.timezone) });
    }
    return new Set(await this.windows.holdMany(tx, holds));
  }

  /** Whether a job may be queued now (false while it is held for a window). */
  async runnable(tx: TenantTx, jobId: string): Promise<boolean> {
    const nb = await this.windows.notBefore(tx, jobId);
    return nb === null || nb.getTime() <= Date.now();
  }
}
