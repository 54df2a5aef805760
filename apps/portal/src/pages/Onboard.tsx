import {
  Alert,
  Badge,
  Button,
  Card,
  Group,
  Loader,
  Stack,
  Stepper,
  TagsInput,
  Text,
  Textarea,
  TextInput,
  Title,
} from '@mantine/core';
import { useEffect, useState, type SyntheticEvent } from 'react';
import { api, type Site, type SiteHealth } from '../api';
import { Copyable, ErrorAlert } from '../components';
import { useTenantEvents } from '../realtime';
import { Link } from '../router';
import { tenantPath, useSession } from '../session';
import { ago, useAction, when } from '../util';

/** Create a site, show its one-line onboarding command, then watch until the router reports in. */
export function OnboardPage() {
  const { tenant, can } = useSession();
  const [step, setStep] = useState(0);
  const [name, setName] = useState('');
  const [tags, setTags] = useState<string[]>([]);
  const [address, setAddress] = useState('');
  const [notes, setNotes] = useState('');
  const [site, setSite] = useState<Site | null>(null);
  const [command, setCommand] = useState<{ command: string; expiresAt: string } | null>(null);
  const [health, setHealth] = useState<SiteHealth | null>(null);
  const { busy, error, run } = useAction();

  const create = (e: SyntheticEvent) => {
    e.preventDefault();
    void run(async () => {
      const s =
        site ??
        (await api<Site>('POST', `/tenants/${tenant.id}/sites`, {
          body: { name: name.trim(), tags, notes, ...(address.trim() ? { address: address.trim() } : {}) },
        }));
      setSite(s);
      setCommand(await api('POST', `/tenants/${tenant.id}/sites/${s.id}/onboarding`));
      setStep(1);
    });
  };

  // A status event for this site asks at once instead of waiting for the next 3-second poll.
  const [nudge, setNudge] = useState(0);
  useTenantEvents((e) => {
    if ((e.type === 'site.status' || e.type === 'site.changed') && e.data.siteId === site?.id) setNudge((n) => n + 1);
  });
  const watching = step >= 1 && !health?.tunnelUp;
  useEffect(() => {
    if (!watching || !site) return;
    let stop = false;
    const poll = async () => {
      try {
        const h = await api<SiteHealth>('GET', `/tenants/${tenant.id}/sites/${site.id}/health`);
        if (stop) return;
        setHealth(h);
        if (h.tunnelUp || h.onboardedAt) setStep(2);
      } catch {
        // keep polling
      }
    };
    void poll();
    const t = setInterval(() => void poll(), 3000);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [watching, site, tenant.id, nudge]);

  if (!can('operator')) return <Alert title="Not allowed">Adding sites needs the operator role or above.</Alert>;

  return (
    <Stack maw={820}>
      <Title order={2}>Add a site</Title>
      <Stepper active={step} allowNextStepsSelect={false} size="sm">
        <Stepper.Step label="Create the site" description="Name, tags, location">
          <Card withBorder mt="md">
            <form onSubmit={create}>
              <Stack>
                <ErrorAlert error={error} />
                <TextInput
                  label="Site name"
                  required
                  value={name}
                  onChange={(e) => setName(e.currentTarget.value)}
                  maxLength={200}
                />
                <TagsInput
                  label="Tags"
                  description="Press Enter after each tag"
                  value={tags}
                  onChange={setTags}
                  splitChars={[',', ' ']}
                />
                <TextInput label="Address" value={address} onChange={(e) => setAddress(e.currentTarget.value)} />
                <Textarea
                  label="Notes"
                  value={notes}
                  onChange={(e) => setNotes(e.currentTarget.value)}
                  autosize
                  minRows={2}
                />
                <Group justify="end">
                  <Button type="submit" loading={busy} disabled={!name.trim()}>
                    Create and get the command
                  </Button>
                </Group>
              </Stack>
            </form>
          </Card>
        </Stepper.Step>
        <Stepper.Step label="Run the command" description="On the router">
          <Card withBorder mt="md">
            <Stack>
              <Text>
                Open a terminal on the MikroTik router of <b>{site?.name}</b> (WinBox, WebFig or SSH) and paste this one
                line. It downloads the onboarding script from the control plane, which creates a dedicated management
                user and the management tunnel.
              </Text>
              {command && <Copyable value={command.command} label="onboarding command" />}
              {command && (
                <Text size="sm" c="dimmed">
                  Single use, valid until {when(command.expiresAt)}.
                </Text>
              )}
              <Group gap="xs" aria-live="polite">
                <Loader size="xs" aria-hidden />
                <Text size="sm">
                  Waiting for the router…{' '}
                  {health ? `health: ${health.health}, last poll ${ago(health.lastPollAt)}` : ''}
                </Text>
              </Group>
              {site && <OpenSite href={tenantPath(tenant, `/sites/${site.id}`)} variant="default" />}
            </Stack>
          </Card>
        </Stepper.Step>
        <Stepper.Step label="Connected" description="Tunnel up">
          <Card withBorder mt="md">
            <Stack>
              <Group gap="xs">
                <Badge color={health?.tunnelUp ? 'teal' : 'yellow'} size="lg" role="status" data-testid="onboard-state">
                  {health?.tunnelUp ? 'tunnel up' : 'reported in, waiting for the tunnel'}
                </Badge>
                <Text>
                  {site?.name} is onboarded
                  {health?.routerosVersion ? ` (RouterOS ${health.routerosVersion}, ${health.board ?? ''})` : ''}.
                </Text>
              </Group>
              {site && <OpenSite href={tenantPath(tenant, `/sites/${site.id}`)} />}
            </Stack>
          </Card>
        </Stepper.Step>
      </Stepper>
    </Stack>
  );
}

function OpenSite({ href, variant }: { href: string; variant?: 'default' }) {
  return (
    <Group>
      <Button variant={variant} component={Link} href={href}>
        Open the site page
      </Button>
    </Group>
  );
}
