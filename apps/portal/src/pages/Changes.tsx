import {
  Badge,
  Button,
  Card,
  Checkbox,
  Code,
  Group,
  SegmentedControl,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useEffect, useState } from 'react';
import { call, errorText, type ResponseOf } from '../api';
import { CardTable, EmptyNote, ErrorAlert, Facts } from '../components';
import { Link } from '../router';
import { tenantPath, useSession } from '../session';
import { useLoad, when } from '../util';

/**
 * Safe changes (docs/adr/0088-0090): the approval inbox with counts, and a plan's diff per
 * site (menu, item, property, before → after; the RouterOS commands) with apply.
 */

type Plan = ResponseOf<'/api/v1/tenants/{tenantId}/plans/{planId}', 'get'>;
type Inbox = ResponseOf<'/api/v1/tenants/{tenantId}/approvals', 'get'>;
type ApprovalState = 'pending' | 'approved' | 'rejected' | 'expired';

const STATUS_COLOR: Record<string, string> = {
  planning: 'gray',
  ready: 'blue',
  failed: 'red',
  applying: 'yellow',
  applied: 'green',
  stale: 'orange',
  apply_failed: 'red',
};

/** One site's preview: the property changes as a before → after table, and the commands. */
function SiteDiff({ site }: { site: Plan['sites'][number] }) {
  const { tenant } = useSession();
  return (
    <Card withBorder data-testid="plan-site">
      <Group justify="space-between" mb="xs">
        <Link href={tenantPath(tenant, `/sites/${site.siteId}`)}>
          <Text fw={600}>{site.siteName}</Text>
        </Link>
        <Group gap="xs">
          {site.routerosVersion && <Badge variant="light">RouterOS {site.routerosVersion}</Badge>}
          <Badge color={STATUS_COLOR[site.status] ?? 'gray'}>{site.status.replace('_', ' ')}</Badge>
        </Group>
      </Group>
      {site.error && (
        <Text c="red" size="sm" mb="xs">
          {site.error}
        </Text>
      )}
      {site.changes.length === 0 ? (
        <Text size="sm" c="dimmed">
          {site.status === 'planning' ? 'Reading the router…' : 'Nothing to change: the router already holds this.'}
        </Text>
      ) : (
        <Table striped aria-label={`Changes on ${site.siteName}`}>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Menu</Table.Th>
              <Table.Th>Item</Table.Th>
              <Table.Th>Property</Table.Th>
              <Table.Th>Before</Table.Th>
              <Table.Th>After</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {site.changes.map((c, i) => (
              <Table.Tr key={i}>
                <Table.Td>
                  <Code>{c.menu}</Code>
                </Table.Td>
                <Table.Td>{c.item || '—'}</Table.Td>
                <Table.Td>{c.property}</Table.Td>
                <Table.Td className="diff-before">{c.before ?? <Text c="dimmed">(none)</Text>}</Table.Td>
                <Table.Td className="diff-after">{c.after ?? <Text c="dimmed">(removed)</Text>}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {site.commands.length > 0 && (
        <Code block mt="xs" aria-label="RouterOS commands">
          {site.commands.join('\n')}
        </Code>
      )}
      {site.note && (
        <Text size="xs" mt="xs">
          {site.note}
        </Text>
      )}
      {site.dryRun && site.dryRun.status !== 'skipped' && (
        <Text size="xs" mt="xs">
          /import dry-run: {site.dryRun.status} — {site.dryRun.detail}
        </Text>
      )}
    </Card>
  );
}

/** A plan: summary across its sites, the diff of each, and apply. */
export function PlanView({ plan, onChanged }: { plan: Plan; onChanged?: () => void }) {
  const { tenant, can } = useSession();
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [urgent, setUrgent] = useState(false);
  const apply = async () => {
    setError(null);
    try {
      const r = await call('post', '/api/v1/tenants/{tenantId}/plans/{planId}/apply', {
        path: { tenantId: tenant.id, planId: plan.id },
        body: { urgent },
      });
      setNote(r.approval ? `Waiting for approval by ${r.approval.requiredRole}.` : 'Applying.');
      onChanged?.();
    } catch (e) {
      setError(errorText(e));
    }
  };
  const s = plan.summary;
  return (
    <Stack>
      <Facts
        rows={[
          ['State', <Badge key="s">{plan.state.replace('_', ' ')}</Badge>],
          ['Sites', `${s.sites} (${s.sitesWithChanges} with changes, ${s.failed} failed, ${s.stale} stale)`],
          ['Changes', String(s.changes)],
          ['Expires', plan.expired ? 'expired' : when(plan.expiresAt)],
        ]}
      />
      {can('operator') && plan.state === 'open' && plan.ready && !plan.expired && (
        <Group>
          <Button onClick={() => void apply()}>Apply this plan</Button>
          {can('admin') && (
            <Checkbox
              label="Urgent: run outside maintenance windows"
              checked={urgent}
              onChange={(e) => setUrgent(e.currentTarget.checked)}
            />
          )}
        </Group>
      )}
      {note && <Text role="status">{note}</Text>}
      <ErrorAlert error={error} />
      {plan.sites.map((site) => (
        <SiteDiff key={site.siteId} site={site} />
      ))}
    </Stack>
  );
}

export function PlanPage({ planId }: { planId: string }) {
  const { tenant } = useSession();
  const plan = useLoad(
    (signal) =>
      call('get', '/api/v1/tenants/{tenantId}/plans/{planId}', { path: { tenantId: tenant.id, planId }, signal }),
    [tenant.id, planId],
  );
  const { reload } = plan;
  const busy = !plan.data?.ready || plan.data.sites.some((x) => x.status === 'applying');
  useEffect(() => {
    if (!busy) return undefined;
    const t = setInterval(reload, 1500);
    return () => clearInterval(t);
  }, [busy, reload]);
  return (
    <Stack>
      <Title order={2}>Plan {planId.slice(0, 8)}</Title>
      <ErrorAlert error={plan.error} />
      {plan.data && <PlanView plan={plan.data} onChanged={reload} />}
    </Stack>
  );
}

/** The approval inbox: counts per state, each request with its plan, approve or reject. */
export function ApprovalsPage() {
  const { tenant, can } = useSession();
  const [state, setState] = useState<ApprovalState>('pending');
  const [comment, setComment] = useState('');
  const [error, setError] = useState<string | null>(null);
  const inbox = useLoad(
    (signal) =>
      call('get', '/api/v1/tenants/{tenantId}/approvals', {
        path: { tenantId: tenant.id },
        query: { state, limit: 50 },
        signal,
      }),
    [tenant.id, state],
  );
  const decide = async (id: string, how: 'approve' | 'reject') => {
    setError(null);
    try {
      const path = { tenantId: tenant.id, approvalId: id };
      const body = comment ? { comment } : {};
      if (how === 'approve')
        await call('post', '/api/v1/tenants/{tenantId}/approvals/{approvalId}/approve', { path, body });
      else await call('post', '/api/v1/tenants/{tenantId}/approvals/{approvalId}/reject', { path, body });
      inbox.reload();
    } catch (e) {
      setError(errorText(e));
    }
  };
  const counts: Inbox['counts'] | undefined = inbox.data?.counts;
  return (
    <Stack>
      <Title order={2}>Approvals</Title>
      <SegmentedControl
        aria-label="Approval state"
        value={state}
        onChange={(v) => setState(v as ApprovalState)}
        data={(['pending', 'approved', 'rejected', 'expired'] as const).map((s) => ({
          value: s,
          label: `${s} (${counts?.[s] ?? '…'})`,
        }))}
      />
      <ErrorAlert error={inbox.error ?? error} />
      {state === 'pending' && can('operator') && (
        <TextInput label="Comment (optional)" value={comment} onChange={(e) => setComment(e.currentTarget.value)} />
      )}
      {inbox.data && inbox.data.items.length === 0 && <EmptyNote>No {state} approval requests.</EmptyNote>}
      {inbox.data?.items.map((a) => (
        <Card withBorder key={a.id} data-testid="approval">
          <Group justify="space-between">
            <Stack gap={2}>
              <Text fw={600}>
                {typeof a.requestedBy['label'] === 'string' ? a.requestedBy['label'] : 'someone'} asks to{' '}
                {a.planId ? (
                  <>
                    apply plan <Link href={tenantPath(tenant, `/plans/${a.planId}`)}>{a.planId.slice(0, 8)}</Link>
                  </>
                ) : (
                  <>
                    run rollout{' '}
                    <Link href={tenantPath(tenant, `/rollouts/${a.rolloutId ?? ''}`)}>
                      {(a.rolloutId ?? '').slice(0, 8)}
                    </Link>
                  </>
                )}
              </Text>
              <Text size="sm" c="dimmed">
                needs {a.requiredRole} · {a.reasons.join('; ')} · expires {when(a.expiresAt)}
              </Text>
            </Stack>
            {a.state === 'pending' ? (
              <Group>
                <Button onClick={() => void decide(a.id, 'approve')}>Approve</Button>
                <Button variant="default" color="red" onClick={() => void decide(a.id, 'reject')}>
                  Reject
                </Button>
              </Group>
            ) : (
              <Badge>{a.state}</Badge>
            )}
          </Group>
          {a.plan && (
            <Stack mt="sm">
              {a.plan.sites.map((site) => (
                <SiteDiff key={site.siteId} site={site} />
              ))}
            </Stack>
          )}
        </Card>
      ))}
    </Stack>
  );
}

/** Recent plans (links to their diff view). */
export function PlansPage() {
  const { tenant } = useSession();
  const plans = useLoad(
    (signal) =>
      call('get', '/api/v1/tenants/{tenantId}/plans', { path: { tenantId: tenant.id }, query: { limit: 50 }, signal }),
    [tenant.id],
  );
  return (
    <Stack>
      <Title order={2}>Plans</Title>
      <ErrorAlert error={plans.error} />
      <CardTable
        minWidth={600}
        columns={['Plan', 'State', 'Sites', 'Changes', 'Created']}
        footer={plans.data?.items.length === 0 ? <EmptyNote>No plans yet.</EmptyNote> : null}
      >
        {plans.data?.items.map((p) => (
          <Table.Tr key={p.id}>
            <Table.Td>
              <Link href={tenantPath(tenant, `/plans/${p.id}`)}>{p.id.slice(0, 8)}</Link>
            </Table.Td>
            <Table.Td>{p.state.replace('_', ' ')}</Table.Td>
            <Table.Td>{p.summary.sites}</Table.Td>
            <Table.Td>{p.summary.changes}</Table.Td>
            <Table.Td>{when(p.createdAt)}</Table.Td>
          </Table.Tr>
        ))}
      </CardTable>
    </Stack>
  );
}
