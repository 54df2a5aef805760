import { Alert, Badge, Button, Card, Code, Group, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { Fragment, useState } from 'react';
import { api, errorText, type AuditEntry, type Page } from '../api';
import { EmptyNote, ErrorAlert, TableHead } from '../components';
import { useSession } from '../session';
import { useLoad, when } from '../util';

/** One side of an audit entry's change, as indented JSON under a small label. */
function JsonBlock({ label, value }: { label: string; value: unknown }) {
  return (
    <div>
      <Text size="xs" fw={600}>
        {label}
      </Text>
      <Code block>{JSON.stringify(value, null, 2)}</Code>
    </div>
  );
}

function localToIso(v: string): string | undefined {
  if (!v) return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

export function AuditPage() {
  const { tenant, can } = useSession();
  const [action, setAction] = useState('');
  const [targetType, setTargetType] = useState('');
  const [since, setSince] = useState('');
  const [until, setUntil] = useState('');
  const [filters] = useDebouncedValue({ action, targetType, since, until }, 300);
  const [extra, setExtra] = useState<{ items: AuditEntry[]; cursor: string | null } | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const query = {
    limit: 100,
    action: filters.action.trim() || undefined,
    targetType: filters.targetType.trim() || undefined,
    since: localToIso(filters.since),
    until: localToIso(filters.until),
  };
  const list = useLoad(
    async (signal) => {
      const p = await api<Page<AuditEntry>>('GET', `/tenants/${tenant.id}/audit-log`, { query, signal });
      setExtra(null);
      return p;
    },
    [tenant.id, JSON.stringify(query)],
  );
  if (!can('admin')) return <Alert title="Not allowed">The audit log is for admins and owners.</Alert>;

  const items = [...(list.data?.items ?? []), ...(extra?.items ?? [])];
  const cursor = extra ? extra.cursor : (list.data?.nextCursor ?? null);
  const more = async () => {
    if (!cursor) return;
    try {
      const p = await api<Page<AuditEntry>>('GET', `/tenants/${tenant.id}/audit-log`, { query: { ...query, cursor } });
      setExtra((x) => ({ items: [...(x?.items ?? []), ...p.items], cursor: p.nextCursor }));
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <Stack>
      <Title order={2}>Audit log</Title>
      <Group align="end" gap="sm" role="search" aria-label="Filter the audit log">
        {(
          [
            ['Action', { placeholder: 'e.g. site.created' }, action, setAction],
            ['Target type', { placeholder: 'e.g. site' }, targetType, setTargetType],
            ['Since', { type: 'datetime-local' }, since, setSince],
            ['Until', { type: 'datetime-local' }, until, setUntil],
          ] as const
        ).map(([label, props, value, set]) => (
          <TextInput key={label} label={label} {...props} value={value} onChange={(e) => set(e.currentTarget.value)} />
        ))}
      </Group>
      <ErrorAlert error={error ?? list.error} />
      <Card withBorder padding={0}>
        <Table.ScrollContainer minWidth={700}>
          <Table>
            <TableHead
              columns={['Time', 'Who', 'Action', 'Target', 'From', <span className="sr-only">Details</span>]}
            />
            <Table.Tbody>
              {items.map((e) => (
                <Fragment key={e.id}>
                  <Table.Tr>
                    <Table.Td>{when(e.time)}</Table.Td>
                    <Table.Td>
                      {e.actor.label ?? e.actor.id ?? '—'}{' '}
                      <Badge size="xs" variant="light" color="gray">
                        {e.actor.type}
                      </Badge>
                    </Table.Td>
                    <Table.Td className="mono">{e.action}</Table.Td>
                    <Table.Td>
                      {e.target.type}
                      {e.target.id ? <span className="mono"> {e.target.id.slice(0, 8)}</span> : null}
                    </Table.Td>
                    <Table.Td className="mono">{e.actor.sourceIp ?? '—'}</Table.Td>
                    <Table.Td>
                      {(e.before !== null || e.after !== null) && (
                        <Button
                          size="xs"
                          variant="subtle"
                          aria-expanded={open === e.id}
                          onClick={() => setOpen(open === e.id ? null : e.id)}
                        >
                          {open === e.id ? 'Hide' : 'Changes'}
                        </Button>
                      )}
                    </Table.Td>
                  </Table.Tr>
                  {open === e.id && (
                    <Table.Tr>
                      <Table.Td colSpan={6}>
                        <Group align="start" grow>
                          <JsonBlock label="Before" value={e.before} />
                          <JsonBlock label="After" value={e.after} />
                        </Group>
                      </Table.Td>
                    </Table.Tr>
                  )}
                </Fragment>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
        {list.data && items.length === 0 && <EmptyNote>Nothing matches.</EmptyNote>}
      </Card>
      {cursor && (
        <Button variant="default" onClick={() => void more()}>
          Load older entries
        </Button>
      )}
    </Stack>
  );
}
