import { Button, Card, Group, Progress, Select, SimpleGrid, Stack, Text, Title } from '@mantine/core';
import { useEffect, useState } from 'react';
import { api } from '../api';
import { JOB_COLOR, JOB_STATES, JobsTable, MoreButton, useJobList, useSiteNames } from '../jobs';
import { useTenantEvents } from '../realtime';
import { Link } from '../router';
import { EmptyNote, ErrorAlert, NotLoaded } from '../components';
import { tenantPath, useSession } from '../session';
import { useLoad, when } from '../util';

/** Every job of the tenant, newest first, with live progress; filter by state or site. */
export function JobsPage() {
  const { tenant } = useSession();
  const [state, setState] = useState<string | null>(null);
  // `?site=<id>`: the jobs of one site (the site page links here).
  const [site, setSite] = useState(() => new URLSearchParams(location.search).get('site'));
  const list = useJobList({ state: state ?? undefined, siteId: site ?? undefined });
  const names = useSiteNames([...list.items.map((j) => j.siteId), ...(site ? [site] : [])]);
  return (
    <Stack>
      <Title order={2}>Jobs</Title>
      <Group align="end" role="search" aria-label="Filter jobs">
        <Select
          label="State"
          placeholder="Any state"
          clearable
          data={JOB_STATES.map((s) => ({ value: s, label: s }))}
          value={state}
          onChange={setState}
          w={200}
        />
        {site && (
          <Button
            variant="light"
            rightSection={<span aria-hidden>×</span>}
            aria-label={`Remove the site filter (${names.get(site) ?? 'site'})`}
            onClick={() => {
              setSite(null);
              history.replaceState(null, '', tenantPath(tenant, '/jobs'));
            }}
          >
            Site: {names.get(site) ?? site.slice(0, 8)}
          </Button>
        )}
      </Group>
      <ErrorAlert error={list.error} />
      <Card withBorder padding={0}>
        {list.items.length === 0 ? (
          <EmptyNote>{list.loading ? 'Loading jobs…' : 'No jobs match.'}</EmptyNote>
        ) : (
          <JobsTable jobs={list.items} siteNames={names} />
        )}
      </Card>
      <MoreButton list={list} />
    </Stack>
  );
}

interface Batch {
  id: string;
  kind: string;
  total: number;
  states: Record<string, number>;
  finished: number;
  done: boolean;
  createdAt: string;
}

/** One change fanned out to many sites: totals per state and the per-site jobs, live. */
export function BatchPage({ batchId }: { batchId: string }) {
  const { tenant } = useSession();
  const batch = useLoad(
    (signal) => api<Batch>('GET', `/tenants/${tenant.id}/job-batches/${batchId}`, { signal }),
    [tenant.id, batchId],
  );
  const list = useJobList({ batchId });
  const names = useSiteNames(list.items.map((j) => j.siteId));
  // Totals follow the jobs' events (re-read at most twice a second), and are read again
  // whenever the live link could not replay what it missed (first connect, long outage): the
  // job rows reload then too, so both stay in step (a summary at "0 of 5" beside finished rows).
  const [stale, setStale] = useState(0);
  const { reload } = batch;
  useTenantEvents((e) => {
    if ((e.type === 'job.progress' || e.type === 'job.batch') && e.data.batchId === batchId) setStale((n) => n + 1);
  }, reload);
  useEffect(() => {
    if (!stale) return;
    const t = setTimeout(reload, 500);
    return () => clearTimeout(t);
  }, [stale, reload]);

  if (batch.error || !batch.data) return <NotLoaded loaded={batch} title="Batch not available" label="Loading batch" />;
  const b = batch.data;
  return (
    <Stack>
      <Text size="sm">
        <Link href={tenantPath(tenant, '/jobs')}>Jobs</Link> / batch {b.id.slice(0, 8)}
      </Text>
      <Title order={2}>
        Batch: {b.kind} on {b.total} site{b.total === 1 ? '' : 's'}
      </Title>
      <Card withBorder>
        <Text size="sm" mb="xs" data-testid="batch-summary">
          {b.finished} of {b.total} finished{b.done ? ' — done' : ''} · started {when(b.createdAt)}
        </Text>
        <Progress.Root size="lg" aria-label="Batch progress">
          {JOB_STATES.filter((s) => b.states[s]).map((s) => (
            <Progress.Section key={s} value={(100 * (b.states[s] ?? 0)) / Math.max(b.total, 1)} color={JOB_COLOR[s]}>
              <Progress.Label>{s}</Progress.Label>
            </Progress.Section>
          ))}
        </Progress.Root>
        <SimpleGrid cols={{ base: 2, sm: 4, md: 7 }} mt="sm">
          {JOB_STATES.map((s) => (
            <div key={s}>
              <Text size="xs" c="dimmed">
                {s}
              </Text>
              <Text fw={600} c={JOB_COLOR[s]} data-testid={`batch-${s}`}>
                {b.states[s] ?? 0}
              </Text>
            </div>
          ))}
        </SimpleGrid>
      </Card>
      <Card withBorder padding={0}>
        <JobsTable jobs={list.items} siteNames={names} />
      </Card>
      <MoreButton list={list} />
    </Stack>
  );
}
