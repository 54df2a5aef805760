import {
  Alert,
  Badge,
  Button,
  Card,
  Group,
  Modal,
  PasswordInput,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useState, type SyntheticEvent } from 'react';
import { api, errorText, ROLE_RANK, ROLES, type Member, type Page, type Role } from '../api';
import { useSession } from '../session';
import { useLoad, when } from '../util';

const ROLE_HELP: Record<Role, string> = {
  owner: 'everything, including renaming the tenant',
  admin: 'users, API keys, audit log, deleting sites',
  operator: 'adding and changing sites, running actions',
  viewer: 'read only',
};

export function MembersPage() {
  const { tenant, can, me } = useSession();
  const [pages, setPages] = useState<Member[]>([]);
  const list = useLoad(
    async (signal) => {
      const p = await api<Page<Member>>('GET', `/tenants/${tenant.id}/members`, { query: { limit: 200 }, signal });
      setPages([]);
      return p;
    },
    [tenant.id],
  );
  const [adding, setAdding] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const admin = can('admin');
  const assignable = ROLES.filter((r) => ROLE_RANK[r] <= ROLE_RANK[tenant.role]);

  const setRole = async (m: Member, role: Role) => {
    setError(null);
    try {
      await api('PATCH', `/tenants/${tenant.id}/members/${m.userId}`, { body: { role } });
      list.reload();
    } catch (e) {
      setError(errorText(e));
    }
  };
  const remove = async (m: Member) => {
    if (!window.confirm(`Remove ${m.email} from ${tenant.name}?`)) return;
    setError(null);
    try {
      await api('DELETE', `/tenants/${tenant.id}/members/${m.userId}`);
      list.reload();
    } catch (e) {
      setError(errorText(e));
    }
  };
  const more = async () => {
    if (!list.data?.nextCursor) return;
    const p = await api<Page<Member>>('GET', `/tenants/${tenant.id}/members`, {
      query: { limit: 200, cursor: list.data.nextCursor },
    });
    setPages((x) => [...x, ...p.items]);
  };
  const members = [...(list.data?.items ?? []), ...pages];

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Users and roles</Title>
        {admin && <Button onClick={() => setAdding(true)}>Add a user</Button>}
      </Group>
      {(error ?? list.error) && (
        <Alert color="red" role="alert">
          {error ?? list.error}
        </Alert>
      )}
      <Card withBorder padding={0}>
        <Table.ScrollContainer minWidth={600}>
          <Table striped highlightOnHover>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Email</Table.Th>
                <Table.Th>Role</Table.Th>
                <Table.Th>MFA</Table.Th>
                <Table.Th>Member since</Table.Th>
                {admin && <Table.Th>Actions</Table.Th>}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {members.map((m) => (
                <Table.Tr key={m.userId}>
                  <Table.Td>{m.displayName}</Table.Td>
                  <Table.Td>{m.email}</Table.Td>
                  <Table.Td>
                    {admin && m.userId !== me.id && ROLE_RANK[m.role] <= ROLE_RANK[tenant.role] ? (
                      <Select
                        aria-label={`Role of ${m.email}`}
                        data={assignable}
                        value={m.role}
                        allowDeselect={false}
                        onChange={(v) => v && v !== m.role && void setRole(m, v as Role)}
                        w={130}
                        size="xs"
                      />
                    ) : (
                      <Badge variant="light">{m.role}</Badge>
                    )}
                  </Table.Td>
                  <Table.Td>{m.mfaEnabled ? <Badge color="teal">on</Badge> : <Badge color="gray">off</Badge>}</Table.Td>
                  <Table.Td>{when(m.createdAt)}</Table.Td>
                  {admin && (
                    <Table.Td>
                      {m.userId !== me.id && (
                        <Button
                          size="xs"
                          variant="subtle"
                          color="red"
                          onClick={() => void remove(m)}
                          aria-label={`Remove ${m.email}`}
                        >
                          Remove
                        </Button>
                      )}
                    </Table.Td>
                  )}
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      </Card>
      {list.data?.nextCursor && pages.length === 0 && (
        <Button variant="default" onClick={() => void more()}>
          Load more
        </Button>
      )}
      <Text size="sm" c="dimmed">
        Roles: {ROLES.map((r) => `${r} — ${ROLE_HELP[r]}`).join('; ')}.
      </Text>
      <AddMember
        opened={adding}
        roles={assignable}
        tenantId={tenant.id}
        onClose={() => setAdding(false)}
        onAdded={() => {
          setAdding(false);
          list.reload();
        }}
      />
    </Stack>
  );
}

function AddMember(props: {
  opened: boolean;
  roles: Role[];
  tenantId: string;
  onClose: () => void;
  onAdded: () => void;
}) {
  const [email, setEmail] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: SyntheticEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api('POST', `/tenants/${props.tenantId}/members`, {
        body: {
          email: email.trim(),
          role,
          ...(displayName.trim() ? { displayName: displayName.trim() } : {}),
          ...(password ? { password } : {}),
        },
      });
      setEmail('');
      setDisplayName('');
      setPassword('');
      props.onAdded();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal opened={props.opened} onClose={props.onClose} title="Add a user">
      <form onSubmit={(e) => void submit(e)}>
        <Stack>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <TextInput
            label="Email"
            type="email"
            required
            value={email}
            onChange={(e) => setEmail(e.currentTarget.value)}
          />
          <TextInput label="Display name" value={displayName} onChange={(e) => setDisplayName(e.currentTarget.value)} />
          <Select
            label="Role"
            data={props.roles}
            value={role}
            allowDeselect={false}
            onChange={(v) => v && setRole(v as Role)}
          />
          <PasswordInput
            label="Initial password"
            description="Only for a new account (at least 12 characters); an existing account keeps its password."
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
            autoComplete="new-password"
          />
          <Group justify="end">
            <Button variant="default" onClick={props.onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={busy}>
              Add
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
