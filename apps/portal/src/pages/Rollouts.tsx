import { Badge, Button, Card, Group, Progress, Stack, Table, Text, Title } from '@mantine/core';
import { useEffect, useState } from 'react';
import { call, errorText, type ResponseOf } from '../api';
import { EmptyNote, ErrorAlert, NotLoaded } from '../components';
import { useTenantEvents } from '../realtime';
import { Link } from '../router';
import { tenantPath, useSession } from '../session';
import { useLoad, when } from '../util';

type Rollout = ResponseOf<'/api/v1/tenants/{tenantId}/rollouts/{rolloutId}', 'get'>;

const STATE_COLOR: Record<string, string> = {
  running: 'blue',
  paused: 'yellow',
  halted: 'red',
  completed: 'green',
  aborted: 'gray',
  pending: 'gray',
  passed: 'green',
  failed: 'red',
  cancelled: 'gray',
};

/** Re-reads `reload` at most twice a second while `rollout.progress` events arrive for `id` (any, without `id`). */
function useRolloutEvents(reload: () => void, id?: string): void {
  const [stale, setStale] = useState(0);
  useTenantEvents((e) => {
    if (e.type === 'rollout.progress' && (!id || e.data.rolloutId === id)) setStale((n) => n + 1);
    if (e.type === 'job.batch' && id) setStale((n) => n + 1);
  }, reload);
  useEffect(() => {
    if (!stale) return;
    const t = setTimeout(reload, 500);
    return () => clearTimeout(t);
  }, [stale, reload]);
}

function Summary({ r }: { r: Rollout }) {
  const pct = (n: number) => (100 * n) / Math.max(r.total, 1);
  return (
    <>
      <Progress.Root size="lg" aria-label="Rollout progress">
        <Progress.Section value={pct(r.counts.succeeded)} color="green" />
        <Progress.Section value={pct(r.counts.failed)} color="red" />
        <Progress.Section value={pct(r.counts.open)} color="blue" />
      </Progress.Root>
      <Text size="sm" mt={4} data-testid="rollout-summary">
        {r.counts.succeeded} succeeded · {r.counts.failed} failed · {r.counts.open} running · {r.counts.notStarted} not
        started (of {r.total})
      </Text>
    </>
  );
}

/** The tenant's rollouts, newest first, live. */
export function RolloutsPage() {
  const { tenant } = useSession();
  const list = useLoad(
    (signal) => call('get', '/api/v1/tenants/{tenantId}/rollouts', { path: { tenantId: tenant.id }, signal }),
    [tenant.id],
  );
  useRolloutEvents(list.reload);
  const items = list.data?.items ?? [];
  return (
    <Stack>
      <Title order={2}>Rollouts</Title>
      <ErrorAlert error={list.error} />
      <Card withBorder padding={0}>
        {items.length === 0 ? (
          <EmptyNote>{list.data ? 'No rollouts yet.' : 'Loading rollouts…'}</EmptyNote>
        ) : (
          <Table>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Rollout</Table.Th>
                <Table.Th>State</Table.Th>
                <Table.Th>Wave</Table.Th>
                <Table.Th>Progress</Table.Th>
                <Table.Th>Started</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((r) => (
                <Table.Tr key={r.id}>
                  <Table.Td>
                    <Link href={tenantPath(tenant, `/rollouts/${r.id}`)}>
                      {r.kind} on {r.total} sites
                    </Link>
                  </Table.Td>
                  <Table.Td>
                    <Badge color={STATE_COLOR[r.state]}>{r.state}</Badge>
                  </Table.Td>
                  <Table.Td>
                    {r.currentWave + 1} of {r.waves.length}
                  </Table.Td>
                  <Table.Td>
                    {r.counts.succeeded} / {r.total}
                  </Table.Td>
                  <Table.Td>{when(r.createdAt)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Card>
    </Stack>
  );
}

/** One rollout: its waves and gates, live; pause, resume and abort for operators. */
export function RolloutPage({ rolloutId }: { rolloutId: string }) {
  const { tenant, can } = useSession();
  const loaded = useLoad(
    (signal) =>
      call('get', '/api/v1/tenants/{tenantId}/rollouts/{rolloutId}', {
        path: { tenantId: tenant.id, rolloutId },
        signal,
      }),
    [tenant.id, rolloutId],
  );
  const { reload } = loaded;
  useRolloutEvents(reload, rolloutId);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (loaded.error || !loaded.data)
    return <NotLoaded loaded={loaded} title="Rollout not available" label="Loading rollout" />;
  const r = loaded.data;
  const act = async (action: 'pause' | 'resume' | 'abort') => {
    setBusy(true);
    setError(null);
    try {
      const path = { tenantId: tenant.id, rolloutId };
      if (action === 'pause') await call('post', '/api/v1/tenants/{tenantId}/rollouts/{rolloutId}/pause', { path });
      else if (action === 'resume')
        await call('post', '/api/v1/tenants/{tenantId}/rollouts/{rolloutId}/resume', { path });
      else await call('post', '/api/v1/tenants/{tenantId}/rollouts/{rolloutId}/abort', { path });
      reload();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Stack>
      <Text size="sm">
        <Link href={tenantPath(tenant, '/rollouts')}>Rollouts</Link> / {r.id.slice(0, 8)}
      </Text>
      <Group justify="space-between">
        <Title order={2}>
          Rollout: {r.kind} on {r.total} sites{' '}
          <Badge color={STATE_COLOR[r.state]} size="lg" data-testid="rollout-state">
            {r.state}
          </Badge>
        </Title>
        {can('operator') && (
          <Group gap="xs">
            {r.state === 'running' && (
              <Button variant="default" loading={busy} onClick={() => void act('pause')}>
                Pause
              </Button>
            )}
            {(r.state === 'paused' || r.state === 'halted') && (
              <Button loading={busy} onClick={() => void act('resume')}>
                Resume
              </Button>
            )}
            {['running', 'paused', 'halted'].includes(r.state) && (
              <Button color="red" variant="light" loading={busy} onClick={() => void act('abort')}>
                Abort
              </Button>
            )}
          </Group>
        )}
      </Group>
      <ErrorAlert error={error} />
      {r.reason && (
        <Text c={r.state === 'halted' ? 'red' : 'dimmed'} data-testid="rollout-reason">
          {r.reason}
        </Text>
      )}
      <Card withBorder>
        <Summary r={r} />
      </Card>
      <Card withBorder padding={0}>
        <Table>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Wave</Table.Th>
              <Table.Th>Sites</Table.Th>
              <Table.Th>State</Table.Th>
              <Table.Th>Jobs</Table.Th>
              <Table.Th>Health gates</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {r.waves.map((w) => (
              <Table.Tr key={w.index} data-testid={`wave-${w.index + 1}`}>
                <Table.Td>
                  {w.index === 0 ? 'Canary' : `Wave ${w.index + 1}`}
                  {w.attempt > 0 ? ` (attempt ${w.attempt + 1})` : ''}
                </Table.Td>
                <Table.Td>{w.sites}</Table.Td>
                <Table.Td>
                  <Badge color={STATE_COLOR[w.state]}>{w.state}</Badge>
                </Table.Td>
                <Table.Td>
                  {w.batchId ? (
                    <Link href={tenantPath(tenant, `/jobs/batches/${w.batchId}`)}>
                      {Object.entries(w.jobs)
                        .map(([s, n]) => `${n} ${s}`)
                        .join(', ') || 'jobs'}
                    </Link>
                  ) : (
                    '—'
                  )}
                </Table.Td>
                <Table.Td>
                  {w.gate
                    ? w.gate.passed
                      ? `passed (${w.gate.failures} of ${w.gate.sites} failing, ${w.gate.allowed} allowed)`
                      : `failed: ${Object.entries(w.gate.causes)
                          .map(([c, n]) => `${n} ${c}`)
                          .join(', ')}`
                    : '—'}
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Card>
      <Text size="xs" c="dimmed">
        Started {when(r.createdAt)} by {r.requestedBy.label ?? r.requestedBy.type}
        {r.finishedAt ? ` · ended ${when(r.finishedAt)}` : ''}
      </Text>
    </Stack>
  );
}
