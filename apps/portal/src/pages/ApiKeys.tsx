import { Alert, Badge, Button, Group, Modal, Select, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useState, type SyntheticEvent } from 'react';
import { api, errorText, ROLE_RANK, ROLES, type ApiKey, type Page, type Role } from '../api';
import { CardTable, Copyable, EmptyNote, ErrorAlert, RoleSelect, RowDangerButton } from '../components';
import { useSession } from '../session';
import { ago, useAction, useLoad, when } from '../util';

export function ApiKeysPage() {
  const { tenant, can } = useSession();
  const list = useLoad(
    (signal) => api<Page<ApiKey>>('GET', `/tenants/${tenant.id}/api-keys`, { query: { limit: 200 }, signal }),
    [tenant.id],
  );
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<(ApiKey & { key: string }) | null>(null);
  const [error, setError] = useState<string | null>(null);

  if (!can('admin')) return <Alert title="Not allowed">API keys are managed by admins and owners.</Alert>;

  const revoke = async (k: ApiKey) => {
    if (!window.confirm(`Revoke "${k.name}"? Integrations using it stop working at once.`)) return;
    try {
      await api('DELETE', `/tenants/${tenant.id}/api-keys/${k.id}`);
      list.reload();
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>API keys</Title>
        <Button onClick={() => setCreating(true)}>New API key</Button>
      </Group>
      <Text size="sm" c="dimmed">
        Keys authenticate integrations with <span className="mono">Authorization: Bearer &lt;key&gt;</span> and act with
        the role they were given (never above yours).
      </Text>
      <ErrorAlert error={error ?? list.error} />
      {created && (
        <Alert
          color="yellow"
          title={`Key "${created.name}" created: copy it now`}
          role="status"
          withCloseButton
          onClose={() => setCreated(null)}
        >
          <Stack gap="xs">
            <Text size="sm">This is the only time the secret is shown. Store it in your secret manager.</Text>
            <Copyable value={created.key} label="API key secret" />
          </Stack>
        </Alert>
      )}
      <CardTable
        minWidth={700}
        striped
        columns={['Name', 'Key starts with', 'Role', 'Created', 'Last used', 'Expires', 'State', 'Actions']}
        footer={list.data && list.data.items.length === 0 && <EmptyNote>No API keys yet.</EmptyNote>}
      >
        {(list.data?.items ?? []).map((k) => (
          <Table.Tr key={k.id}>
            <Table.Td>{k.name}</Table.Td>
            <Table.Td className="mono">{k.prefix}…</Table.Td>
            <Table.Td>{k.role}</Table.Td>
            <Table.Td>{when(k.createdAt)}</Table.Td>
            <Table.Td>{ago(k.lastUsedAt)}</Table.Td>
            <Table.Td>{when(k.expiresAt)}</Table.Td>
            <Table.Td>
              {k.revokedAt ? (
                <Badge color="gray">revoked</Badge>
              ) : Date.parse(k.expiresAt) < Date.now() ? (
                <Badge color="orange">expired</Badge>
              ) : (
                <Badge color="teal">active</Badge>
              )}
            </Table.Td>
            <Table.Td>
              {!k.revokedAt && (
                <RowDangerButton label="Revoke" name={`Revoke ${k.name}`} onClick={() => void revoke(k)} />
              )}
            </Table.Td>
          </Table.Tr>
        ))}
      </CardTable>
      <CreateKey
        opened={creating}
        tenantId={tenant.id}
        roles={ROLES.filter((r) => ROLE_RANK[r] <= ROLE_RANK[tenant.role])}
        onClose={() => setCreating(false)}
        onCreated={(k) => {
          setCreating(false);
          setCreated(k);
          list.reload();
        }}
      />
    </Stack>
  );
}

function CreateKey(props: {
  opened: boolean;
  tenantId: string;
  roles: Role[];
  onClose: () => void;
  onCreated: (k: ApiKey & { key: string }) => void;
}) {
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [days, setDays] = useState<string>('90');
  const { busy, error, run } = useAction();
  const submit = (e: SyntheticEvent) => {
    e.preventDefault();
    void run(async () => {
      const expiresAt = new Date(Date.now() + Number(days) * 86_400_000).toISOString();
      const k = await api<ApiKey & { key: string }>('POST', `/tenants/${props.tenantId}/api-keys`, {
        body: { name: name.trim(), role, expiresAt },
      });
      setName('');
      props.onCreated(k);
    });
  };
  return (
    <Modal opened={props.opened} onClose={props.onClose} title="New API key">
      <form onSubmit={submit}>
        <Stack>
          <ErrorAlert error={error} />
          <TextInput
            label="Name"
            required
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
            description="What uses it, e.g. monitoring"
          />
          <RoleSelect roles={props.roles} value={role} onChange={setRole} />
          <Select
            label="Expires"
            data={[
              { value: '30', label: 'in 30 days' },
              { value: '90', label: 'in 90 days' },
              { value: '365', label: 'in a year' },
            ]}
            value={days}
            allowDeselect={false}
            onChange={(v) => v && setDays(v)}
          />
          <Group justify="end">
            <Button variant="default" onClick={props.onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={busy} disabled={!name.trim()}>
              Create
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
