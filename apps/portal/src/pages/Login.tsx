import { Button, Card, Center, PasswordInput, PinInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { useState, type SyntheticEvent } from 'react';
import { login, loginMfa } from '../api';
import { ErrorAlert } from '../components';
import { useAction } from '../util';

export function LoginPage({ onSignedIn }: { onSignedIn: () => Promise<void> }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [mfaToken, setMfaToken] = useState<string | null>(null);
  const [code, setCode] = useState('');
  const [recovery, setRecovery] = useState(false);
  const { busy, error, run } = useAction();

  const submit = (e: SyntheticEvent) => {
    e.preventDefault();
    void run(
      async () => {
        if (mfaToken) {
          await loginMfa(mfaToken, code.trim());
          await onSignedIn();
        } else {
          const res = await login(email.trim(), password);
          if (res.kind === 'mfa') setMfaToken(res.mfaToken);
          else await onSignedIn();
        }
      },
      () => mfaToken && setCode(''),
    );
  };

  return (
    <Center mih="100vh" bg="gray.0" p="md">
      <Card withBorder shadow="sm" padding="xl" w={400} maw="100%" component="main">
        <form onSubmit={submit} aria-labelledby="login-title">
          <Stack>
            <div>
              <Title order={1} size="h2" id="login-title">
                Backplane
              </Title>
              <Text c="dimmed" size="sm">
                {mfaToken ? 'Enter the 6-digit code from your authenticator app.' : 'Sign in to your MSP workspace.'}
              </Text>
            </div>
            <ErrorAlert error={error} title="Sign-in failed" />
            {mfaToken && recovery ? (
              <TextInput
                label="Recovery code"
                description="One of the codes you saved when you turned on two-factor sign-in (each works once)."
                placeholder="xxxxx-xxxxx"
                autoComplete="off"
                autoFocus
                value={code}
                onChange={(e) => setCode(e.currentTarget.value)}
              />
            ) : mfaToken ? (
              <Stack gap={4}>
                <Text component="label" htmlFor="mfa-code" size="sm" fw={500}>
                  Authentication code
                </Text>
                <PinInput
                  id="mfa-code"
                  length={6}
                  type="number"
                  oneTimeCode
                  autoFocus
                  value={code}
                  onChange={setCode}
                  aria-label="Authentication code"
                />
              </Stack>
            ) : (
              <>
                <TextInput
                  label="Email"
                  type="email"
                  autoComplete="username"
                  required
                  autoFocus
                  value={email}
                  onChange={(e) => setEmail(e.currentTarget.value)}
                />
                <PasswordInput
                  label="Password"
                  autoComplete="current-password"
                  required
                  value={password}
                  onChange={(e) => setPassword(e.currentTarget.value)}
                />
              </>
            )}
            <Button
              type="submit"
              loading={busy}
              disabled={mfaToken ? (recovery ? code.trim().length < 10 : code.length !== 6) : false}
              fullWidth
            >
              {mfaToken ? 'Verify' : 'Sign in'}
            </Button>
            {mfaToken && (
              <Button
                variant="subtle"
                onClick={() => {
                  setRecovery(!recovery);
                  setCode('');
                }}
              >
                {recovery ? 'Use the authenticator app' : 'Use a recovery code'}
              </Button>
            )}
            {mfaToken && (
              <Button
                variant="subtle"
                onClick={() => {
                  setRecovery(false);
                  setMfaToken(null);
                  setCode('');
                }}
              >
                Back
              </Button>
            )}
          </Stack>
        </form>
      </Card>
    </Center>
  );
}
