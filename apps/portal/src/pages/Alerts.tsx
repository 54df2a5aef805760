import {
  Alert,
  Badge,
  Button,
  Group,
  SegmentedControl,
  Stack,
  Switch,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useEffect, useState } from 'react';
import { api, errorText, type AlertItem, type AlertRule, type Page } from '../api';
import { CardTable, EmptyNote, ErrorAlert, Panel } from '../components';
import { useTenantEvents } from '../realtime';
import { useSession } from '../session';
import { ago, useLoad, when } from '../util';

const SEVERITY_COLOR = { info: 'blue', warning: 'orange', critical: 'red' } as const;
type StateFilter = 'open' | 'acknowledged' | 'resolved';

/** Alerts (open, acknowledged, resolved history; live) and the tenant's alert rules (issue 20). */
export function AlertsPage() {
  const { tenant, can } = useSession();
  const [state, setState] = useState<StateFilter>('open');
  const [q, setQ] = useState('');
  const [error, setError] = useState<string | null>(null);
  const alerts = useLoad(
    (signal) =>
      api<Page<AlertItem>>('GET', `/tenants/${tenant.id}/alerts`, {
        query: { state, limit: 100, ...(q.trim() ? { q: q.trim() } : {}) },
        signal,
      }),
    [tenant.id, state, q],
  );
  const rules = useLoad(
    (signal) => api<Page<AlertRule>>('GET', `/tenants/${tenant.id}/alert-rules`, { query: { limit: 200 }, signal }),
    [tenant.id],
  );
  // Live: the worker publishes `alert.changed` after every alert it opens, fires, resolves or
  // mutes (docs/adr/0093); a reconnect reloads; the poll is only a fallback for lost events.
  useTenantEvents(
    (e) => {
      if (e.type === 'alert.changed') alerts.reload();
    },
    () => alerts.reload(),
  );
  useEffect(() => {
    const t = window.setInterval(() => alerts.reload(), 60_000);
    return () => window.clearInterval(t);
  }, [alerts.reload]);

  const act = async (path: string, body?: unknown) => {
    try {
      await api('POST', `/tenants/${tenant.id}/alerts/${path}`, body === undefined ? {} : { body });
      alerts.reload();
    } catch (e) {
      setError(errorText(e));
    }
  };
  const toggleRule = async (r: AlertRule) => {
    try {
      await api('PATCH', `/tenants/${tenant.id}/alert-rules/${r.id}`, { body: { enabled: !r.enabled } });
      rules.reload();
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <Stack>
      <Title order={2}>Alerts</Title>
      <ErrorAlert error={error ?? alerts.error ?? rules.error} />
      <Group>
        <SegmentedControl
          aria-label="Alert state"
          value={state}
          onChange={(v) => setState(v as StateFilter)}
          data={[
            { value: 'open', label: 'Open' },
            { value: 'acknowledged', label: 'Acknowledged' },
            { value: 'resolved', label: 'Resolved' },
          ]}
        />
        <TextInput
          aria-label="Search alerts"
          placeholder="Search summary or rule"
          value={q}
          onChange={(e) => setQ(e.currentTarget.value)}
        />
      </Group>
      <CardTable
        minWidth={800}
        striped
        columns={['Severity', 'Summary', 'State', 'Since', 'Acknowledged', 'Actions']}
        footer={alerts.data && alerts.data.items.length === 0 && <EmptyNote>No alerts here.</EmptyNote>}
      >
        {(alerts.data?.items ?? []).map((a) => (
          <Table.Tr key={a.id} data-alert={a.id}>
            <Table.Td miw={100}>
              <Badge color={SEVERITY_COLOR[a.severity]}>{a.severity}</Badge>
            </Table.Td>
            <Table.Td>
              <Text size="sm">{a.summary}</Text>
              <Text size="xs" c="dimmed">
                {a.ruleName}
              </Text>
            </Table.Td>
            <Table.Td miw={110}>
              <Badge color={a.state === 'firing' ? 'red' : a.state === 'pending' ? 'yellow' : 'gray'}>{a.state}</Badge>
              {a.silencedUntil && Date.parse(a.silencedUntil) > Date.now() && (
                <Badge color="gray" variant="outline" ml={4}>
                  silenced
                </Badge>
              )}
            </Table.Td>
            <Table.Td title={when(a.firedAt ?? a.pendingSince)}>{ago(a.firedAt ?? a.pendingSince)}</Table.Td>
            <Table.Td>{a.acknowledgedAt ? `${a.acknowledgedBy ?? ''} ${ago(a.acknowledgedAt)}` : '—'}</Table.Td>
            <Table.Td>
              {a.state !== 'resolved' && can('operator') && (
                <Group gap={4}>
                  {!a.acknowledgedAt && (
                    <Button size="xs" variant="light" onClick={() => void act(`${a.id}/acknowledge`)}>
                      Acknowledge
                    </Button>
                  )}
                  <Button
                    size="xs"
                    variant="default"
                    onClick={() =>
                      void act(`${a.id}/silence`, { until: new Date(Date.now() + 3_600_000).toISOString() })
                    }
                  >
                    Silence 1 h
                  </Button>
                </Group>
              )}
            </Table.Td>
          </Table.Tr>
        ))}
      </CardTable>
      <Panel title="Rules">
        <Text size="sm" c="dimmed" mb="xs">
          Every tenant starts with these defaults; admins can switch rules off or add rules through the API (events or
          telemetry thresholds, scoped to tags or sites).
        </Text>
        <CardTable minWidth={700} columns={['Rule', 'Watches', 'For', 'Scope', 'Severity', 'Enabled']}>
          {(rules.data?.items ?? []).map((r) => (
            <Table.Tr key={r.id}>
              <Table.Td>{r.name}</Table.Td>
              <Table.Td className="mono">
                {r.kind === 'event' ? r.eventType : `${r.metric} ${r.operator} ${r.threshold}`}
              </Table.Td>
              <Table.Td>{r.durationSeconds ? `${r.durationSeconds} s` : 'at once'}</Table.Td>
              <Table.Td>
                {r.scope === 'all' ? 'all sites' : r.scope === 'tags' ? r.tags.join(', ') : `${r.siteIds.length} sites`}
              </Table.Td>
              <Table.Td>
                <Badge color={SEVERITY_COLOR[r.severity]}>{r.severity}</Badge>
              </Table.Td>
              <Table.Td>
                <Switch
                  aria-label={`Rule ${r.name} enabled`}
                  checked={r.enabled}
                  disabled={!can('admin')}
                  onChange={() => void toggleRule(r)}
                />
              </Table.Td>
            </Table.Tr>
          ))}
        </CardTable>
      </Panel>
      {!can('operator') && <Alert color="gray">Viewers see alerts; operators acknowledge and silence them.</Alert>}
    </Stack>
  );
}
