import { Alert, Badge, Button, Group, Modal, Select, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useState, type SyntheticEvent } from 'react';
import { api, errorText, type Channel, type Delivery, type Page } from '../api';
import { CardTable, Copyable, EmptyNote, ErrorAlert, RowDangerButton } from '../components';
import { useSession } from '../session';
import { ago, useAction, useLoad, when } from '../util';

const KINDS = ['webhook', 'slack', 'teams', 'discord', 'email', 'telegram', 'ntfy'] as const;
type Kind = (typeof KINDS)[number];

/** Notification channels with "send test" and the delivery log (issue 20). */
export function ChannelsPage() {
  const { tenant, can } = useSession();
  const list = useLoad(
    (signal) => api<Page<Channel>>('GET', `/tenants/${tenant.id}/channels`, { query: { limit: 200 }, signal }),
    [tenant.id],
  );
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<{ name: string; value: string } | null>(null);
  const [log, setLog] = useState<Channel | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  if (!can('operator')) return <Alert title="Not allowed">Channels are visible to operators and above.</Alert>;

  const post = async (path: string, what: string) => {
    try {
      await api('POST', `/tenants/${tenant.id}/channels/${path}`, {});
      setNote(what);
      list.reload();
    } catch (e) {
      setError(errorText(e));
    }
  };
  const remove = async (c: Channel) => {
    if (!window.confirm(`Delete channel "${c.name}"?`)) return;
    try {
      await api('DELETE', `/tenants/${tenant.id}/channels/${c.id}`);
      list.reload();
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Notification channels</Title>
        {can('admin') && <Button onClick={() => setCreating(true)}>New channel</Button>}
      </Group>
      <Text size="sm" c="dimmed">
        Webhooks are signed (Standard Webhooks: <span className="mono">webhook-id</span>,{' '}
        <span className="mono">webhook-timestamp</span>, <span className="mono">webhook-signature</span>); every
        notification is retried with backoff for a day, and receivers deduplicate on the event id.
      </Text>
      <ErrorAlert error={error ?? list.error} />
      {note && (
        <Alert color="teal" role="status" withCloseButton onClose={() => setNote(null)}>
          {note}
        </Alert>
      )}
      {secret && (
        <Alert
          color="yellow"
          title={`Signing secret of "${secret.name}": copy it now`}
          withCloseButton
          onClose={() => setSecret(null)}
        >
          <Copyable value={secret.value} label="Signing secret" />
        </Alert>
      )}
      <CardTable
        minWidth={800}
        striped
        columns={['Name', 'Kind', 'Target', 'Events', 'State', 'Actions']}
        footer={list.data && list.data.items.length === 0 && <EmptyNote>No channels yet.</EmptyNote>}
      >
        {(list.data?.items ?? []).map((c) => (
          <Table.Tr key={c.id} data-channel={c.name}>
            <Table.Td>{c.name}</Table.Td>
            <Table.Td>{c.kind}</Table.Td>
            <Table.Td className="mono">
              {c.target ?? (c.config['to'] as string[] | undefined)?.join(', ') ?? '—'}
            </Table.Td>
            <Table.Td className="mono">{c.events.join(', ')}</Table.Td>
            <Table.Td miw={130}>
              {c.enabled ? (
                c.consecutiveFailures > 0 ? (
                  <Badge color="orange">failing ({c.consecutiveFailures})</Badge>
                ) : (
                  <Badge color="teal">active</Badge>
                )
              ) : (
                <Badge color="red" title={c.disabledReason ?? ''}>
                  disabled
                </Badge>
              )}
            </Table.Td>
            <Table.Td>
              <Group gap={4}>
                {can('admin') && (
                  <Button
                    size="xs"
                    variant="light"
                    onClick={() => void post(`${c.id}/test`, `Test sent to "${c.name}"`)}
                  >
                    Send test
                  </Button>
                )}
                <Button size="xs" variant="default" onClick={() => setLog(c)}>
                  Delivery log
                </Button>
                {can('admin') && (
                  <RowDangerButton label="Delete" name={`Delete ${c.name}`} onClick={() => void remove(c)} />
                )}
              </Group>
            </Table.Td>
          </Table.Tr>
        ))}
      </CardTable>
      <CreateChannel
        opened={creating}
        tenantId={tenant.id}
        onClose={() => setCreating(false)}
        onCreated={(c) => {
          setCreating(false);
          if (c.signingSecret) setSecret({ name: c.name, value: c.signingSecret });
          list.reload();
        }}
      />
      {log && <DeliveryLog channel={log} tenantId={tenant.id} canReplay={can('admin')} onClose={() => setLog(null)} />}
    </Stack>
  );
}

function DeliveryLog(props: { channel: Channel; tenantId: string; canReplay: boolean; onClose: () => void }) {
  const base = `/tenants/${props.tenantId}/channels/${props.channel.id}/deliveries`;
  const list = useLoad((signal) => api<Page<Delivery>>('GET', base, { query: { limit: 50 }, signal }), [base]);
  const [error, setError] = useState<string | null>(null);
  const replay = async (d: Delivery) => {
    try {
      await api('POST', `${base}/${d.id}/replay`, {});
      list.reload();
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <Modal opened onClose={props.onClose} title={`Delivery log: ${props.channel.name}`} size="xl">
      <ErrorAlert error={error ?? list.error} />
      <CardTable minWidth={700} columns={['Event', 'State', 'Attempts', 'Response', 'Latency', 'When', '']}>
        {(list.data?.items ?? []).map((d) => (
          <Table.Tr key={d.id}>
            <Table.Td className="mono" title={d.eventId}>
              {d.eventType}
            </Table.Td>
            <Table.Td>
              <Badge color={d.state === 'delivered' ? 'teal' : d.state === 'failed' ? 'red' : 'yellow'}>
                {d.state}
              </Badge>
            </Table.Td>
            <Table.Td>{d.attempts}</Table.Td>
            <Table.Td title={d.lastError ?? ''}>{d.lastStatus ?? (d.lastError ? 'error' : '—')}</Table.Td>
            <Table.Td>{d.lastLatencyMs === null ? '—' : `${d.lastLatencyMs} ms`}</Table.Td>
            <Table.Td title={when(d.createdAt)}>{ago(d.deliveredAt ?? d.createdAt)}</Table.Td>
            <Table.Td>
              {props.canReplay && d.state !== 'delivering' && (
                <Button size="xs" variant="subtle" onClick={() => void replay(d)}>
                  Replay
                </Button>
              )}
            </Table.Td>
          </Table.Tr>
        ))}
      </CardTable>
      {list.data && list.data.items.length === 0 && <EmptyNote>Nothing sent yet.</EmptyNote>}
    </Modal>
  );
}

function CreateChannel(props: {
  opened: boolean;
  tenantId: string;
  onClose: () => void;
  onCreated: (c: Channel & { signingSecret: string | null }) => void;
}) {
  const [name, setName] = useState('');
  const [kind, setKind] = useState<Kind>('webhook');
  const [target, setTarget] = useState('');
  const [extra, setExtra] = useState('');
  const { busy, error, run } = useAction();
  const body = (): Record<string, unknown> => {
    const common = { name: name.trim(), kind };
    if (kind === 'email')
      return {
        ...common,
        config: {
          to: target
            .split(',')
            .map((t) => t.trim())
            .filter(Boolean),
        },
      };
    if (kind === 'telegram') return { ...common, botToken: extra.trim(), config: { chatId: target.trim() } };
    if (kind === 'ntfy')
      return { ...common, config: { topic: target.trim(), ...(extra.trim() ? { server: extra.trim() } : {}) } };
    return { ...common, url: target.trim() };
  };
  const submit = (e: SyntheticEvent) => {
    e.preventDefault();
    void run(async () => {
      const c = await api<Channel & { signingSecret: string | null }>('POST', `/tenants/${props.tenantId}/channels`, {
        body: body(),
      });
      setName('');
      setTarget('');
      setExtra('');
      props.onCreated(c);
    });
  };
  const targetLabel =
    kind === 'email'
      ? 'Recipients (comma-separated)'
      : kind === 'telegram'
        ? 'Chat id'
        : kind === 'ntfy'
          ? 'Topic'
          : 'URL';
  return (
    <Modal opened={props.opened} onClose={props.onClose} title="New notification channel">
      <form onSubmit={submit}>
        <Stack>
          <ErrorAlert error={error} />
          <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} />
          <Select
            label="Kind"
            data={KINDS.map((k) => ({ value: k, label: k }))}
            value={kind}
            allowDeselect={false}
            onChange={(v) => v && setKind(v as Kind)}
          />
          <TextInput label={targetLabel} required value={target} onChange={(e) => setTarget(e.currentTarget.value)} />
          {(kind === 'telegram' || kind === 'ntfy') && (
            <TextInput
              label={kind === 'telegram' ? 'Bot token' : 'Server (default https://ntfy.sh)'}
              required={kind === 'telegram'}
              value={extra}
              onChange={(e) => setExtra(e.currentTarget.value)}
            />
          )}
          <Text size="xs" c="dimmed">
            It receives alert notifications (firing, resolved) and disabled-channel notices.
          </Text>
          <Group justify="end">
            <Button variant="default" onClick={props.onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={busy} disabled={!name.trim() || !target.trim()}>
              Create
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
