import { Anchor, Badge, Button, Group, Progress, Table, Text, UnstyledButton } from '@mantine/core';
import { TERMINAL_STATES, type JobProgressData } from '@backplane/contracts';
import { useCallback, useEffect, useRef, useState } from 'react';
import { api, errorText, type Page } from './api';
import { useJobDetail, useTenantEvents } from './realtime';
import { Link } from './router';
import { tenantPath, useSession } from './session';
import { when } from './util';

export interface JobStep {
  name: string;
  state: string;
  at: string;
  detail?: string;
}
export interface Job {
  id: string;
  siteId: string;
  batchId: string | null;
  kind: string;
  payload: unknown;
  state: string;
  progress: number;
  steps: JobStep[];
  result: unknown;
  error: string | null;
  attempts: number;
  requestedBy: { type: string; id: string | null; label: string | null };
  hasExports: boolean;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  expiresAt: string;
}
export { JOB_STATES } from '@backplane/contracts';
export const TERMINAL: ReadonlySet<string> = new Set(TERMINAL_STATES);
export const JOB_COLOR: Record<string, string> = {
  queued: 'gray',
  waiting: 'yellow',
  running: 'blue',
  succeeded: 'teal',
  failed: 'red',
  cancelled: 'gray',
  expired: 'orange',
  /** Sent, interrupted, effect not verified: check the router. */
  unknown: 'grape',
  /** The change cut the router off; the router took it back by itself (commit-confirm). */
  reverted: 'pink',
};

export interface JobQuery {
  siteId?: string | undefined;
  batchId?: string | undefined;
  state?: string | undefined;
}

/**
 * Jobs by cursor (newest first), kept current by `job.progress` events: a job in the list is
 * re-read when it moves (coalesced per job), a new one matching the query is added on top.
 */
export function useJobList(query: JobQuery, limit = 50) {
  const { tenant } = useSession();
  const [items, setItems] = useState<Job[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const pending = useRef(new Map<string, ReturnType<typeof setTimeout>>());
  const key = `${tenant.id}|${query.siteId ?? ''}|${query.batchId ?? ''}|${query.state ?? ''}`;

  const load = useCallback(
    async (from: string | null, signal?: AbortSignal) => {
      setLoading(true);
      try {
        const page = await api<Page<Job>>('GET', `/tenants/${tenant.id}/jobs`, {
          query: { ...query, limit, cursor: from },
          ...(signal ? { signal } : {}),
        });
        setItems((old) => (from ? [...old, ...page.items] : page.items));
        setCursor(page.nextCursor);
        setError(null);
      } catch (e) {
        if (!signal?.aborted) setError(errorText(e));
      } finally {
        if (!signal?.aborted) setLoading(false);
      }
    },
    // `key` stands for the query
    [key, limit],
  );

  useEffect(() => {
    const ac = new AbortController();
    void load(null, ac.signal);
    return () => ac.abort();
  }, [load, tick]);
  useEffect(() => {
    const timers = pending.current;
    return () => timers.forEach((t) => clearTimeout(t));
  }, []);

  const refetch = useCallback(
    (id: string) => {
      if (pending.current.has(id)) return;
      pending.current.set(
        id,
        setTimeout(() => {
          pending.current.delete(id);
          api<Job>('GET', `/tenants/${tenant.id}/jobs/${id}`).then(
            (job) =>
              setItems((old) => {
                const matches = !query.state || job.state === query.state;
                if (old.some((j) => j.id === id))
                  return matches ? old.map((j) => (j.id === id ? job : j)) : old.filter((j) => j.id !== id);
                return matches ? [job, ...old] : old;
              }),
            () => undefined,
          );
        }, 250),
      );
    },
    // `key` stands for the query
    [key],
  );

  const moved = (d: JobProgressData) => {
    if (query.siteId && d.siteId !== query.siteId) return;
    if (query.batchId && d.batchId !== query.batchId) return;
    // Show the move at once, then read the job for its steps and result.
    setItems((old) =>
      old.map((j) =>
        j.id === d.jobId
          ? {
              ...j,
              state: d.state,
              progress: d.progress !== undefined ? Math.round(d.progress * 100) : j.progress,
              error: d.error ?? j.error,
            }
          : j,
      ),
    );
    refetch(d.jobId);
  };
  // A batch's jobs are not announced one by one (ADR 0079): a list of a batch (or of every
  // job) re-reads its first page when the batch moved, at most once a second.
  const batchReload = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(
    () => () => {
      if (batchReload.current) clearTimeout(batchReload.current);
    },
    [],
  );
  useTenantEvents(
    (e) => {
      if (e.type === 'job.progress') moved(e.data);
      else if (e.type === 'job.batch' && !query.siteId && (!query.batchId || query.batchId === e.data.batchId)) {
        batchReload.current ??= setTimeout(() => {
          batchReload.current = null;
          setTick((t) => t + 1);
        }, 1000);
      }
    },
    () => setTick((t) => t + 1),
  );
  // A site's job list gets every job of the site in detail, batch jobs included.
  useJobDetail(query.siteId ? { siteId: query.siteId } : undefined, moved);

  return {
    items,
    loading,
    error,
    done: cursor === null,
    more: () => cursor && void load(cursor),
    reload: () => setTick((t) => t + 1),
    /** A job this page just created: shown at once, kept current by events. */
    add: (job: Job) => setItems((old) => [job, ...old.filter((j) => j.id !== job.id)]),
  };
}

/** Names of the sites in view, read once each (a page of jobs touches few sites). */
export function useSiteNames(ids: string[]): Map<string, string> {
  const { tenant } = useSession();
  const [names, setNames] = useState<Map<string, string>>(new Map());
  const asked = useRef(new Set<string>());
  const wanted = [...new Set(ids)].filter((id) => !asked.current.has(id));
  useEffect(() => {
    for (const id of wanted) {
      asked.current.add(id);
      api<{ name: string }>('GET', `/tenants/${tenant.id}/sites/${id}`).then(
        (s) => setNames((m) => new Map(m).set(id, s.name)),
        () => undefined,
      );
    }
  }, [wanted.join(','), tenant.id]);
  return names;
}

export function JobState({ job }: { job: Pick<Job, 'state'> }) {
  return (
    <Badge color={JOB_COLOR[job.state] ?? 'gray'} variant="light" data-testid="job-state">
      {job.state}
    </Badge>
  );
}

/** A step detail that is JSON (a run-command answer) indented for reading; other text as it is. */
function pretty(detail: string): string {
  if (!/^[[{]/.test(detail)) return detail;
  try {
    return JSON.stringify(JSON.parse(detail), null, 2);
  } catch {
    return detail;
  }
}

/**
 * A job's progress bar and its last step (or error). A long step detail (a run-command answer
 * can be pages of JSON) stays one truncated line inside the column, so the table keeps its
 * width; "Show all" opens the whole text in place, wrapped and scrollable.
 */
export function JobProgress({ job }: { job: Job }) {
  const [open, setOpen] = useState(false);
  const step = job.steps.at(-1);
  const text = job.error ?? (step ? `${step.name}${step.detail ? `: ${step.detail}` : ''}` : job.state);
  const long = text.length > 60;
  return (
    <div className="job-progress">
      <Progress
        value={job.state === 'succeeded' ? 100 : job.progress}
        color={JOB_COLOR[job.state] ?? 'blue'}
        animated={job.state === 'running'}
        aria-label={`Progress of ${job.kind}`}
        size="sm"
      />
      <Group gap={4} wrap="nowrap" mt={2} align="baseline">
        <Text size="xs" c="dimmed" truncate title={long ? undefined : text} style={{ flex: 1, minWidth: 0 }}>
          {text}
        </Text>
        {long && (
          <UnstyledButton
            className="job-detail-toggle"
            aria-expanded={open}
            aria-label={open ? `Show less of the ${job.kind} result` : `Show the whole result of ${job.kind}`}
            onClick={() => setOpen((o) => !o)}
          >
            {open ? 'Show less' : 'Show all'}
          </UnstyledButton>
        )}
      </Group>
      {long && open && (
        <pre className="job-detail" data-testid="job-detail">
          {job.error ?? (step ? `${step.name}:\n${pretty(step.detail ?? '')}` : text)}
        </pre>
      )}
    </div>
  );
}

/** Jobs as a table; `siteNames` shows a name instead of the site id where known. */
export function JobsTable({
  jobs,
  siteNames,
  showSite = true,
}: {
  jobs: Job[];
  siteNames?: Map<string, string>;
  showSite?: boolean;
}) {
  const { tenant } = useSession();
  return (
    <Table.ScrollContainer minWidth={640}>
      <Table striped highlightOnHover aria-label="Jobs">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Job</Table.Th>
            {showSite && <Table.Th>Site</Table.Th>}
            <Table.Th miw={120}>State</Table.Th>
            <Table.Th>Progress</Table.Th>
            <Table.Th w={160}>Requested by</Table.Th>
            <Table.Th w={180}>Created</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {jobs.map((j) => (
            <Table.Tr key={j.id} data-testid="job-row" data-job-id={j.id}>
              <Table.Td>
                <Text fw={500} size="sm">
                  {j.kind}
                </Text>
                {j.batchId && (
                  <Anchor component={Link} href={tenantPath(tenant, `/jobs/batches/${j.batchId}`)} size="xs">
                    batch {j.batchId.slice(0, 8)}
                  </Anchor>
                )}
              </Table.Td>
              {showSite && (
                <Table.Td>
                  <Anchor component={Link} href={tenantPath(tenant, `/sites/${j.siteId}`)} size="sm">
                    {siteNames?.get(j.siteId) ?? `site ${j.siteId.slice(0, 8)}`}
                  </Anchor>
                </Table.Td>
              )}
              <Table.Td>
                <JobState job={j} />
              </Table.Td>
              <Table.Td>
                <JobProgress job={j} />
              </Table.Td>
              <Table.Td>
                <Text size="sm">{j.requestedBy.label ?? j.requestedBy.type}</Text>
              </Table.Td>
              <Table.Td>
                <Text size="sm">{when(j.createdAt)}</Text>
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

export function MoreButton({ list }: { list: { done: boolean; loading: boolean; more: () => unknown } }) {
  if (list.done) return null;
  return (
    <Group justify="center">
      <Button variant="default" loading={list.loading} onClick={() => void list.more()}>
        Load more
      </Button>
    </Group>
  );
}
