import { Button, Group, Select, Stack, Table, Text } from '@mantine/core';
import { useEffect, useState } from 'react';
import { api, errorText } from '../../api';
import { ErrorAlert, Panel, TableHead } from '../../components';
import type { Job } from '../../jobs';
import { useTenantEvents } from '../../realtime';
import { useSession } from '../../session';
import { useAction, useLoad, when } from '../../util';

interface Backup {
  id: string;
  siteId: string;
  jobId: string | null;
  contentHash: string;
  size: number;
  routerosVersion: string | null;
  createdAt: string;
  lastConfirmedAt: string;
}
interface Diff {
  from: Backup;
  to: Backup;
  diff: string;
}

/** A unified diff with added and removed lines marked (and announced as such by their prefix). */
export function DiffView({ text }: { text: string }) {
  const lines = text.split('\n').filter((l) => !l.startsWith('====='));
  return (
    <pre className="diff" aria-label="Differences">
      {lines.map((l, i) => {
        const cls =
          l.startsWith('+') && !l.startsWith('+++')
            ? 'add'
            : l.startsWith('-') && !l.startsWith('---')
              ? 'del'
              : l.startsWith('@@')
                ? 'hunk'
                : undefined;
        return (
          <div key={i} className={cls}>
            {l || ' '}
          </div>
        );
      })}
    </pre>
  );
}

/**
 * Stored backups of the site (one per distinct configuration), "back up now" for operators,
 * and the diff between any two versions for admins (the exports hold secrets).
 */
export function Backups({ base, siteId, onJob }: { base: string; siteId: string; onJob: (job: Job) => void }) {
  const { can } = useSession();
  const list = useLoad((signal) => api<{ items: Backup[] }>('GET', `${base}/backups`, { signal }), [base]);
  const { busy, error, setError, run } = useAction();
  const [from, setFrom] = useState<string | null>(null);
  const [to, setTo] = useState<string | null>(null);
  const [diff, setDiff] = useState<Diff | null>(null);
  const { reload } = list;
  const tenantBase = base.replace(/\/sites\/[^/]+$/, '');

  useTenantEvents((e) => {
    if (e.type === 'backup.created' && e.data.siteId === siteId) reload();
    if (
      e.type === 'job.progress' &&
      e.data.siteId === siteId &&
      e.data.kind === 'backup' &&
      e.data.state === 'succeeded'
    )
      reload();
  });

  const items = list.data?.items ?? [];
  // Default comparison: the two newest versions.
  useEffect(() => {
    if (items.length >= 2 && !from && !to) {
      setFrom(items[1]!.id);
      setTo(items[0]!.id);
    }
  }, [items, from, to]);

  const backupNow = () => run(async () => onJob(await api<Job>('POST', `${base}/backups`)));
  const showDiff = async () => {
    if (!from || !to) return;
    setError(null);
    try {
      setDiff(await api<Diff>('GET', `${tenantBase}/backup-diff`, { query: { from, to } }));
    } catch (e) {
      setError(errorText(e));
    }
  };
  const options = items.map((b) => ({ value: b.id, label: `${when(b.createdAt)} · ${b.contentHash.slice(0, 8)}` }));

  return (
    <Panel
      title="Backups"
      actions={
        can('operator') && (
          <Button size="xs" variant="default" loading={busy} onClick={() => void backupNow()}>
            Back up now
          </Button>
        )
      }
    >
      <ErrorAlert error={error} mb="xs" />
      {list.error ? (
        <Text c="dimmed">{list.error}</Text>
      ) : items.length === 0 ? (
        <Text c="dimmed">{list.loading ? 'Loading…' : 'No backups yet.'}</Text>
      ) : (
        <Stack>
          <Table.ScrollContainer minWidth={480}>
            <Table striped aria-label="Backups">
              <TableHead columns={['Taken', 'Last confirmed', 'RouterOS', 'Size', 'Hash']} />
              <Table.Tbody>
                {items.map((b) => (
                  <Table.Tr key={b.id} data-testid="backup-row">
                    <Table.Td>{when(b.createdAt)}</Table.Td>
                    <Table.Td>{when(b.lastConfirmedAt)}</Table.Td>
                    <Table.Td>{b.routerosVersion ?? '—'}</Table.Td>
                    <Table.Td>{b.size} B</Table.Td>
                    <Table.Td className="mono">{b.contentHash.slice(0, 12)}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
          {can('admin') && items.length >= 2 && (
            <Stack gap="xs">
              <Group align="end" gap="sm">
                <Select label="Compare" data={options} value={from} onChange={setFrom} allowDeselect={false} w={260} />
                <Select label="with" data={options} value={to} onChange={setTo} allowDeselect={false} w={260} />
                <Button variant="default" onClick={() => void showDiff()} disabled={!from || !to || from === to}>
                  Show diff
                </Button>
              </Group>
              {diff && (
                <section aria-label="Backup diff">
                  <Text size="sm" c="dimmed" mb={4}>
                    {when(diff.from.createdAt)} → {when(diff.to.createdAt)}
                  </Text>
                  <DiffView text={diff.diff} />
                </section>
              )}
            </Stack>
          )}
        </Stack>
      )}
    </Panel>
  );
}
