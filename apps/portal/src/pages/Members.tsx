import { Alert, Badge, Button, Group, Modal, Select, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useState, type SyntheticEvent } from 'react';
import { api, errorText, ROLE_RANK, ROLES, type Member, type Page, type Role } from '../api';
import { CardTable, ErrorAlert, RoleSelect, RowDangerButton } from '../components';
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
  const [invited, setInvited] = useState(0);
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
        {admin && <Button onClick={() => setAdding(true)}>Invite a user</Button>}
      </Group>
      <ErrorAlert error={error ?? list.error} />
      <CardTable
        minWidth={600}
        striped
        highlightOnHover
        columns={['Name', 'Email', 'Role', 'MFA', 'Member since', ...(admin ? ['Actions'] : [])]}
      >
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
                  <RowDangerButton label="Remove" name={`Remove ${m.email}`} onClick={() => void remove(m)} />
                )}
              </Table.Td>
            )}
          </Table.Tr>
        ))}
      </CardTable>
      {list.data?.nextCursor && pages.length === 0 && (
        <Button variant="default" onClick={() => void more()}>
          Load more
        </Button>
      )}
      {admin && <PendingInvitations tenantId={tenant.id} version={invited} />}
      <Text size="sm" c="dimmed">
        Roles: {ROLES.map((r) => `${r} — ${ROLE_HELP[r]}`).join('; ')}.
      </Text>
      <AddMember
        opened={adding}
        roles={assignable}
        tenantId={tenant.id}
        onClose={() => setAdding(false)}
        onAdded={() => setInvited((v) => v + 1)}
      />
    </Stack>
  );
}

interface Invitation {
  id: string;
  email: string;
  role: Role;
  status: 'pending' | 'expired';
  createdAt: string;
  expiresAt: string;
}

/** Pending invitations of the tenant, each revocable. */
function PendingInvitations({ tenantId, version }: { tenantId: string; version: number }) {
  const list = useLoad(
    (signal) => api<Page<Invitation>>('GET', `/tenants/${tenantId}/invitations`, { query: { limit: 200 }, signal }),
    [tenantId, version],
  );
  const [error, setError] = useState<string | null>(null);
  const revoke = async (i: Invitation) => {
    if (!window.confirm(`Revoke the invitation of ${i.email}? Its link stops working.`)) return;
    setError(null);
    try {
      await api('DELETE', `/tenants/${tenantId}/invitations/${i.id}`);
      list.reload();
    } catch (e) {
      setError(errorText(e));
    }
  };
  const items = list.data?.items ?? [];
  if (items.length === 0 && !(error ?? list.error)) return null;
  return (
    <Stack gap="xs">
      <Title order={3} size="h4">
        Pending invitations
      </Title>
      <ErrorAlert error={error ?? list.error} />
      <CardTable minWidth={500} columns={['Email', 'Role', 'Expires', 'Actions']}>
        {items.map((i) => (
          <Table.Tr key={i.id}>
            <Table.Td>{i.email}</Table.Td>
            <Table.Td>
              <Badge variant="light">{i.role}</Badge>
            </Table.Td>
            <Table.Td>{i.status === 'expired' ? <Badge color="gray">expired</Badge> : when(i.expiresAt)}</Table.Td>
            <Table.Td>
              <RowDangerButton
                label="Revoke"
                name={`Revoke the invitation of ${i.email}`}
                onClick={() => void revoke(i)}
              />
            </Table.Td>
          </Table.Tr>
        ))}
      </CardTable>
    </Stack>
  );
}

/**
 * Invites someone by email (ADR 0045): no account is created or looked up here. Backplane
 * sends no mail yet, so the single-use link is shown once, for the admin to pass on.
 */
function AddMember(props: {
  opened: boolean;
  roles: Role[];
  tenantId: string;
  onClose: () => void;
  onAdded: () => void;
}) {
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [link, setLink] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: SyntheticEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const inv = await api<{ acceptUrl: string }>('POST', `/tenants/${props.tenantId}/invitations`, {
        body: { email: email.trim(), role },
      });
      setLink(inv.acceptUrl);
      props.onAdded();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  const close = () => {
    setLink(null);
    setEmail('');
    props.onClose();
  };
  return (
    <Modal opened={props.opened} onClose={close} title="Invite a user">
      {link ? (
        <Stack>
          <Alert color="teal" role="status" title="Invitation created">
            Send this link to {email.trim()} yourself (Backplane sends no mail yet). It works once, for 7 days, and is
            shown only now.
          </Alert>
          <TextInput label="Invitation link" value={link} readOnly onFocus={(e) => e.currentTarget.select()} />
          <Group justify="end">
            <Button onClick={() => void navigator.clipboard?.writeText(link)} variant="default">
              Copy
            </Button>
            <Button onClick={close}>Done</Button>
          </Group>
        </Stack>
      ) : (
        <form onSubmit={(e) => void submit(e)}>
          <Stack>
            <ErrorAlert error={error} />
            <TextInput
              label="Email"
              type="email"
              required
              value={email}
              onChange={(e) => setEmail(e.currentTarget.value)}
            />
            <RoleSelect roles={props.roles} value={role} onChange={setRole} />
            <Text size="sm" c="dimmed">
              The person chooses their own password when they accept, or joins with the account they already have.
            </Text>
            <Group justify="end">
              <Button variant="default" onClick={close}>
                Cancel
              </Button>
              <Button type="submit" loading={busy}>
                Create invitation
              </Button>
            </Group>
          </Stack>
        </form>
      )}
    </Modal>
  );
}
