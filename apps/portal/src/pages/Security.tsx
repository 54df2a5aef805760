import { Alert, Button, Card, Group, List, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { useState, type SyntheticEvent } from 'react';
import { call, errorText, type Me } from '../api';
import { Copyable } from '../components';

/**
 * The account's two-factor sign-in (ADR 0054): enrol (password, then the secret for the
 * authenticator app and a code from it, then the recovery codes, shown once), regenerate the
 * recovery codes, or turn it off (password and a code).
 */
export function SecurityPage({ me, reloadMe }: { me: Me; reloadMe: () => Promise<void> }) {
  const [step, setStep] = useState<'idle' | 'password' | 'code'>('idle');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [enrolment, setEnrolment] = useState<{ secret: string; otpauthUri: string } | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const [action, setAction] = useState<'regenerate' | 'disable' | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const run = async (e: SyntheticEvent, fn: () => Promise<void>) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  const reset = () => {
    setStep('idle');
    setAction(null);
    setPassword('');
    setCode('');
    setEnrolment(null);
  };

  const startEnrol = (e: SyntheticEvent) =>
    run(e, async () => {
      setEnrolment(await call('post', '/api/v1/me/mfa/enroll', { body: { password } }));
      setPassword('');
      setStep('code');
    });
  const confirmEnrol = (e: SyntheticEvent) =>
    run(e, async () => {
      const res = await call('post', '/api/v1/me/mfa/verify', { body: { code: code.trim() } });
      reset();
      setCodes(res.recoveryCodes);
      await reloadMe();
    });
  const submitAction = (e: SyntheticEvent) =>
    run(e, async () => {
      const body = { password, code: code.trim() };
      if (action === 'regenerate') {
        const res = await call('post', '/api/v1/me/mfa/recovery-codes', { body });
        setCodes(res.recoveryCodes);
      } else {
        await call('delete', '/api/v1/me/mfa', { body });
        setCodes(null);
      }
      reset();
      await reloadMe();
    });

  const passwordField = (
    <PasswordInput
      label="Your password"
      autoComplete="current-password"
      required
      value={password}
      onChange={(e) => setPassword(e.currentTarget.value)}
    />
  );
  const codeField = (
    <TextInput
      label="Code from your authenticator app"
      inputMode="numeric"
      autoComplete="one-time-code"
      pattern="[0-9]{6}"
      maxLength={6}
      required
      value={code}
      onChange={(e) => setCode(e.currentTarget.value)}
    />
  );
  const codeOrRecoveryField = (
    <TextInput
      label="Code from your authenticator app"
      description="Lost the phone? A recovery code works here too."
      autoComplete="one-time-code"
      maxLength={11}
      required
      value={code}
      onChange={(e) => setCode(e.currentTarget.value)}
    />
  );

  return (
    <Stack maw={640}>
      <Title order={2}>Two-factor sign-in</Title>
      {error && (
        <Alert color="red" role="alert">
          {error}
        </Alert>
      )}
      {codes && (
        <Alert
          color="yellow"
          title="Your recovery codes: save them now"
          role="status"
          withCloseButton
          onClose={() => setCodes(null)}
        >
          <Stack gap="xs">
            <Text size="sm">
              Each code signs you in once instead of a code from the app (if you lose the phone). This is the only time
              they are shown; earlier codes no longer work.
            </Text>
            <Copyable value={codes.join('\n')} label="Recovery codes" />
          </Stack>
        </Alert>
      )}
      <Card withBorder>
        <Stack>
          <Text data-testid="mfa-status">
            {me.mfaEnabled
              ? `Two-factor sign-in is on. Recovery codes left: ${me.mfaRecoveryCodesLeft}.`
              : 'Two-factor sign-in is off. Some tenants require it before you can use them.'}
          </Text>

          {!me.mfaEnabled && step === 'idle' && (
            <Group>
              <Button onClick={() => setStep('password')}>Turn on two-factor sign-in</Button>
            </Group>
          )}
          {!me.mfaEnabled && step === 'password' && (
            <form onSubmit={(e) => void startEnrol(e)}>
              <Stack>
                {passwordField}
                <Group>
                  <Button type="submit" loading={busy}>
                    Continue
                  </Button>
                  <Button variant="default" onClick={reset}>
                    Cancel
                  </Button>
                </Group>
              </Stack>
            </form>
          )}
          {!me.mfaEnabled && step === 'code' && enrolment && (
            <form onSubmit={(e) => void confirmEnrol(e)}>
              <Stack>
                <List type="ordered" size="sm">
                  <List.Item>
                    Add an account in your authenticator app with this key (or open the link on the phone).
                  </List.Item>
                  <List.Item>Enter the 6-digit code it shows.</List.Item>
                </List>
                <Copyable value={enrolment.secret} label="Authenticator key" />
                <Text size="sm">
                  <a href={enrolment.otpauthUri}>Open in authenticator app</a>
                </Text>
                {codeField}
                <Group>
                  <Button type="submit" loading={busy}>
                    Turn on
                  </Button>
                  <Button variant="default" onClick={reset}>
                    Cancel
                  </Button>
                </Group>
              </Stack>
            </form>
          )}

          {me.mfaEnabled && !action && (
            <Group>
              <Button variant="default" onClick={() => setAction('regenerate')}>
                New recovery codes
              </Button>
              <Button color="red" variant="light" onClick={() => setAction('disable')}>
                Turn off
              </Button>
            </Group>
          )}
          {me.mfaEnabled && action && (
            <form onSubmit={(e) => void submitAction(e)}>
              <Stack>
                <Text size="sm">
                  {action === 'regenerate'
                    ? 'New recovery codes replace the ones you have.'
                    : 'Turning it off removes the second factor and the recovery codes.'}
                </Text>
                {passwordField}
                {codeOrRecoveryField}
                <Group>
                  <Button type="submit" loading={busy} color={action === 'disable' ? 'red' : undefined}>
                    {action === 'regenerate' ? 'Make new codes' : 'Turn off'}
                  </Button>
                  <Button variant="default" onClick={reset}>
                    Cancel
                  </Button>
                </Group>
              </Stack>
            </form>
          )}
        </Stack>
      </Card>
    </Stack>
  );
}
