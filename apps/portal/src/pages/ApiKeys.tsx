import { Alert, Badge, Button, Card, Group, Modal, Select, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useState, type SyntheticEvent } from 'react';
import { api, errorText, ROLE_RANK, ROLES, type ApiKey, type Page, type Role } from '../api';
import { Copyable } from '../components';
import { useSession } from '../session';
import { ago, useLoad, when } from '../util';

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
      {(error ?? list.error) && (
        <Alert color="red" role="alert">
          {error ?? list.error}
        </Alert>
      )}
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
      <Card withBorder padding={0}>
        <Table.ScrollContainer minWidth={700}>
          <Table striped>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Key starts with</Table.Th>
                <Table.Th>Role</Table.Th>
                <Table.Th>Created</Table.Th>
                <Table.Th>Last used</Table.Th>
                <Table.Th>Expires</Table.Th>
                <Table.Th>State</Table.Th>
                <Table.Th>Actions</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
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
                      <Button
                        size="xs"
                        variant="subtle"
                        color="red"
                        onClick={() => void revoke(k)}
                        aria-label={`Revoke ${k.name}`}
                      >
                        Revoke
                      </Button>
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
        {list.data && list.data.items.length === 0 && (
          <Text p="md" c="dimmed">
            No API keys yet.
          </Text>
        )}
      </Card>
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
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: SyntheticEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const expiresAt = new Date(Date.now() + Number(days) * 86_400_000).toISOString();
      const k = await api<ApiKey & { key: string }>('POST', `/tenants/${props.tenantId}/api-keys`, {
        body: { name: name.trim(), role, expiresAt },
      });
      setName('');
      props.onCreated(k);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal opened={props.opened} onClose={props.onClose} title="New API key">
      <form onSubmit={(e) => void submit(e)}>
        <Stack>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <TextInput
            label="Name"
            required
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
            description="What uses it, e.g. monitoring"
          />
          <Select
            label="Role"
            data={props.roles}
            value={role}
            allowDeselect={false}
            onChange={(v) => v && setRole(v as Role)}
          />
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
