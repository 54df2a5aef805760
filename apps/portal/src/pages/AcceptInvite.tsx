import { Alert, Button, Card, Center, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { useState, type SyntheticEvent } from 'react';
import { api, type Me } from '../api';
import { ErrorAlert } from '../components';
import { navigate } from '../router';
import { useAction } from '../util';

/** Where a signed-out invitee's token waits while they sign in to an existing account. */
export const PENDING_INVITE_KEY = 'bp.pendingInvite';

interface Accepted {
  tenantId: string;
  role: string;
}

/**
 * `/accept-invite?token=...` (issue 14 finding 1, ADR 0045): a new invitee sets their own
 * password; someone with an account signs in and joins as that account.
 */
export function AcceptInvitePage({ me, onSignedIn }: { me: Me | null; onSignedIn: () => Promise<void> }) {
  const token = new URLSearchParams(location.search).get('token') ?? '';
  const [displayName, setDisplayName] = useState('');
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const [hasAccount, setHasAccount] = useState(false);
  const [done, setDone] = useState<Accepted | null>(null);
  const action = useAction();
  const { busy, error, setError } = action;

  const accept = (fn: () => Promise<Accepted>) =>
    action.run(
      async () => {
        setDone(await fn());
        sessionStorage.removeItem(PENDING_INVITE_KEY);
      },
      (text) => /account with this email exists/.test(text) && setHasAccount(true),
    );
  const createAccount = (e: SyntheticEvent) => {
    e.preventDefault();
    if (password !== confirm) {
      setError('The two passwords differ.');
      return;
    }
    void accept(() =>
      api<Accepted>('POST', '/invitations/accept', {
        body: { token, password, ...(displayName.trim() ? { displayName: displayName.trim() } : {}) },
      }),
    );
  };
  const joinSignedIn = () =>
    void accept(() => api<Accepted>('POST', '/invitations/accept-signed-in', { body: { token } }));
  const signInFirst = () => {
    sessionStorage.setItem(PENDING_INVITE_KEY, token);
    navigate('/login');
  };

  return (
    <Center mih="100vh" bg="gray.0" p="md">
      <Card withBorder shadow="sm" padding="xl" w={440} maw="100%" component="main">
        <Stack>
          <Title order={1} size="h2">
            Join a Backplane workspace
          </Title>
          {!token && <Alert color="red">This link has no invitation token.</Alert>}
          <ErrorAlert error={error} />
          {done ? (
            <>
              <Alert color="teal" role="status">
                You joined as {done.role}.
              </Alert>
              {me ? (
                <Button onClick={() => void onSignedIn().then(() => navigate('/'))}>Open the workspace</Button>
              ) : (
                <Button onClick={() => navigate('/login')}>Sign in</Button>
              )}
            </>
          ) : me ? (
            <>
              <Text size="sm">
                Signed in as <b>{me.email}</b>. The invitation must be for this email address.
              </Text>
              <Button onClick={joinSignedIn} loading={busy} disabled={!token}>
                Accept the invitation
              </Button>
            </>
          ) : (
            <>
              <form onSubmit={createAccount}>
                <Stack>
                  <Text size="sm">New to Backplane? Choose your own password (at least 12 characters).</Text>
                  <TextInput
                    label="Your name"
                    value={displayName}
                    onChange={(e) => setDisplayName(e.currentTarget.value)}
                  />
                  {(
                    [
                      ['Password', password, setPassword],
                      ['Password again', confirm, setConfirm],
                    ] as const
                  ).map(([label, value, set]) => (
                    <PasswordInput
                      key={label}
                      label={label}
                      required
                      value={value}
                      onChange={(e) => set(e.currentTarget.value)}
                      autoComplete="new-password"
                    />
                  ))}
                  <Button type="submit" loading={busy} disabled={!token}>
                    Create my account and join
                  </Button>
                </Stack>
              </form>
              <Button variant={hasAccount ? 'filled' : 'default'} onClick={signInFirst} disabled={!token}>
                I already have an account: sign in first
              </Button>
            </>
          )}
        </Stack>
      </Card>
    </Center>
  );
}
