import {
  Badge,
  Button,
  Card,
  Group,
  NumberInput,
  Progress,
  Select,
  Stack,
  Table,
  Text,
  Textarea,
  TextInput,
  Title,
} from '@mantine/core';
import { useEffect, useState } from 'react';
import { call, errorText, type BodyOf, type ResponseOf } from '../api';
import { EmptyNote, ErrorAlert, NotLoaded } from '../components';
import { useTenantEvents } from '../realtime';
import { Link, navigate } from '../router';
import { tenantPath, useSession } from '../session';
import { useAction, useLoad, when } from '../util';

type Rollout = ResponseOf<'/api/v1/tenants/{tenantId}/rollouts/{rolloutId}', 'get'>;
type RolloutBody = BodyOf<'/api/v1/tenants/{tenantId}/rollouts', 'post'>;
type FirmwarePolicy = ResponseOf<'/api/v1/tenants/{tenantId}/firmware-policy', 'get'>;
type Channel = FirmwarePolicy['channel'];

const KINDS = ['apply-config', 'run-command', 'routeros-upgrade', 'reboot', 'backup'] as const;
const PAYLOAD_EXAMPLE: Record<string, string> = {
  'apply-config': '{ "changes": [{ "menu": "dns", "servers": ["9.9.9.9"] }] }',
  'run-command': '{ "command": "/system/resource/print" }',
  'routeros-upgrade': '{}',
  reboot: '',
  backup: '',
};
const CHANNELS: Channel[] = ['stable', 'long-term', 'testing'];

/** `1, 10%, 50%, 100%` → the waves of a rollout request. */
function parseWaves(text: string): (number | string)[] {
  return text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean)
    .map((t) => (t.endsWith('%') ? t : Number(t)));
}

/** The form that starts a rollout (operators): kind, payload, tags, waves, failure threshold. */
function NewRollout() {
  const { tenant } = useSession();
  const [kind, setKind] = useState<string>('apply-config');
  const [payload, setPayload] = useState(PAYLOAD_EXAMPLE['apply-config']!);
  const [tags, setTags] = useState('');
  const [waves, setWaves] = useState('1, 10%, 50%, 100%');
  const [maxFailures, setMaxFailures] = useState<number | string>(0);
  const { busy, error, setError, run } = useAction();
  const submit = () =>
    run(async () => {
      let parsed: unknown = undefined;
      if (payload.trim()) {
        try {
          parsed = JSON.parse(payload);
        } catch {
          setError('The payload is not valid JSON.');
          return;
        }
      }
      const body = {
        kind,
        ...(parsed !== undefined ? { payload: parsed } : {}),
        tags: tags
          .split(',')
          .map((t) => t.trim())
          .filter(Boolean),
        waves: parseWaves(waves),
        gates: { maxFailures: Number(maxFailures) || 0 },
      } as RolloutBody;
      const r = await call('post', '/api/v1/tenants/{tenantId}/rollouts', { path: { tenantId: tenant.id }, body });
      navigate(tenantPath(tenant, `/rollouts/${r.id}`));
    });
  return (
    <Card withBorder>
      <Stack gap="xs">
        <Title order={4}>New rollout</Title>
        <Group grow align="flex-start">
          <Select
            label="Job kind"
            data={[...KINDS]}
            value={kind}
            allowDeselect={false}
            onChange={(k) => {
              if (!k) return;
              setKind(k);
              setPayload(PAYLOAD_EXAMPLE[k] ?? '');
            }}
          />
          <TextInput
            label="Site tags"
            description="Comma-separated: sites with any of them"
            placeholder="branch, edge"
            value={tags}
            onChange={(e) => setTags(e.currentTarget.value)}
          />
          <TextInput
            label="Waves"
            description="Cumulative: a canary, then growing shares"
            value={waves}
            onChange={(e) => setWaves(e.currentTarget.value)}
          />
          <NumberInput
            label="Failures allowed per wave"
            description="More halt the rollout"
            min={0}
            value={maxFailures}
            onChange={setMaxFailures}
          />
        </Group>
        <Textarea
          label="Payload (JSON)"
          autosize
          minRows={2}
          styles={{ input: { fontFamily: 'monospace' } }}
          value={payload}
          onChange={(e) => setPayload(e.currentTarget.value)}
        />
        <ErrorAlert error={error} />
        <Group>
          <Button loading={busy} disabled={!tags.trim()} onClick={() => void submit()}>
            Start rollout
          </Button>
          <Text size="xs" c="dimmed">
            Only the canary wave starts at first; each next wave waits for the health gates (site online, tunnel up, job
            succeeded).
          </Text>
        </Group>
      </Stack>
    </Card>
  );
}

/** The tenant's firmware policy (channel and pinned version, per tenant and per tag); admins edit it. */
function FirmwarePolicyCard() {
  const { tenant, can } = useSession();
  const loaded = useLoad(
    (signal) => call('get', '/api/v1/tenants/{tenantId}/firmware-policy', { path: { tenantId: tenant.id }, signal }),
    [tenant.id],
  );
  const [draft, setDraft] = useState<FirmwarePolicy | null>(null);
  const [saved, setSaved] = useState(false);
  const { busy, error, run } = useAction();
  const p = draft ?? loaded.data;
  if (!p) return <NotLoaded loaded={loaded} title="Firmware policy not available" label="Loading firmware policy" />;
  const edit = (next: Partial<FirmwarePolicy>) => {
    setSaved(false);
    setDraft({ ...p, ...next });
  };
  const admin = can('admin');
  const save = () =>
    run(async () => {
      const body = {
        channel: p.channel,
        pinnedVersion: p.pinnedVersion?.trim() ? p.pinnedVersion.trim() : null,
        tags: p.tags.map((t) => ({
          tag: t.tag.trim(),
          channel: t.channel,
          pinnedVersion: t.pinnedVersion?.trim() ? t.pinnedVersion.trim() : null,
        })),
      };
      const r = await call('put', '/api/v1/tenants/{tenantId}/firmware-policy', {
        path: { tenantId: tenant.id },
        body,
      });
      setDraft(null);
      loaded.reload();
      setSaved(Boolean(r));
    });
  return (
    <Card withBorder data-testid="firmware-policy">
      <Stack gap="xs">
        <Title order={4}>Firmware policy</Title>
        <Text size="xs" c="dimmed">
          What a RouterOS upgrade installs: the channel and an optional pinned version; a site follows the first tag
          rule it carries, else the tenant&apos;s. {p.updatedAt ? `Updated ${when(p.updatedAt)}.` : 'Defaults.'}
        </Text>
        <Group align="flex-end">
          <Select
            label="Channel"
            data={CHANNELS}
            value={p.channel}
            allowDeselect={false}
            disabled={!admin}
            onChange={(c) => c && edit({ channel: c as Channel })}
          />
          <TextInput
            label="Pinned version"
            placeholder="not pinned"
            value={p.pinnedVersion ?? ''}
            disabled={!admin}
            onChange={(e) => edit({ pinnedVersion: e.currentTarget.value })}
          />
        </Group>
        {p.tags.map((t, i) => (
          <Group key={i} align="flex-end" data-testid={`firmware-tag-${i}`}>
            <TextInput
              label="Tag"
              value={t.tag}
              disabled={!admin}
              onChange={(e) => {
                const tag = e.currentTarget.value;
                edit({ tags: p.tags.map((x, k) => (k === i ? { ...x, tag } : x)) });
              }}
            />
            <Select
              label="Channel"
              data={CHANNELS}
              value={t.channel}
              allowDeselect={false}
              disabled={!admin}
              onChange={(c) =>
                c && edit({ tags: p.tags.map((x, k) => (k === i ? { ...x, channel: c as Channel } : x)) })
              }
            />
            <TextInput
              label="Pinned version"
              placeholder="not pinned"
              value={t.pinnedVersion ?? ''}
              disabled={!admin}
              onChange={(e) => {
                const v = e.currentTarget.value;
                edit({ tags: p.tags.map((x, k) => (k === i ? { ...x, pinnedVersion: v } : x)) });
              }}
            />
            {admin && (
              <Button variant="subtle" color="red" onClick={() => edit({ tags: p.tags.filter((_, k) => k !== i) })}>
                Remove
              </Button>
            )}
          </Group>
        ))}
        <ErrorAlert error={error} />
        {admin && (
          <Group>
            <Button
              variant="default"
              onClick={() => edit({ tags: [...p.tags, { tag: '', channel: p.channel, pinnedVersion: null }] })}
            >
              Add tag rule
            </Button>
            <Button loading={busy} disabled={!draft} onClick={() => void save()}>
              Save firmware policy
            </Button>
            {saved && !draft && <Text size="sm">Saved.</Text>}
          </Group>
        )}
      </Stack>
    </Card>
  );
}

const STATE_COLOR: Record<string, string> = {
  pending_approval: 'yellow',
  rejected: 'gray',
  running: 'blue',
  paused: 'yellow',
  halted: 'red',
  completed: 'green',
  aborted: 'gray',
  pending: 'gray',
  passed: 'green',
  failed: 'red',
  cancelled: 'gray',
};

/** Re-reads `reload` at most twice a second while `rollout.progress` events arrive for `id` (any, without `id`). */
function useRolloutEvents(reload: () => void, id?: string): void {
  const [stale, setStale] = useState(0);
  useTenantEvents((e) => {
    if (e.type === 'rollout.progress' && (!id || e.data.rolloutId === id)) setStale((n) => n + 1);
    if (e.type === 'job.batch' && id) setStale((n) => n + 1);
  }, reload);
  useEffect(() => {
    if (!stale) return;
    const t = setTimeout(reload, 500);
    return () => clearTimeout(t);
  }, [stale, reload]);
}

function Summary({ r }: { r: Rollout }) {
  const pct = (n: number) => (100 * n) / Math.max(r.total, 1);
  return (
    <>
      <Progress.Root size="lg" aria-label="Rollout progress">
        <Progress.Section value={pct(r.counts.succeeded)} color="green" />
        <Progress.Section value={pct(r.counts.failed)} color="red" />
        <Progress.Section value={pct(r.counts.open)} color="blue" />
      </Progress.Root>
      <Text size="sm" mt={4} data-testid="rollout-summary">
        {r.counts.succeeded} succeeded · {r.counts.failed} failed · {r.counts.open} running · {r.counts.notStarted} not
        started (of {r.total})
      </Text>
    </>
  );
}

/** The tenant's rollouts, newest first, live. */
export function RolloutsPage() {
  const { tenant, can } = useSession();
  const list = useLoad(
    (signal) => call('get', '/api/v1/tenants/{tenantId}/rollouts', { path: { tenantId: tenant.id }, signal }),
    [tenant.id],
  );
  useRolloutEvents(list.reload);
  const items = list.data?.items ?? [];
  return (
    <Stack>
      <Title order={2}>Rollouts</Title>
      {can('operator') && <NewRollout />}
      <ErrorAlert error={list.error} />
      <Card withBorder padding={0}>
        {items.length === 0 ? (
          <EmptyNote>{list.data ? 'No rollouts yet.' : 'Loading rollouts…'}</EmptyNote>
        ) : (
          <Table>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Rollout</Table.Th>
                <Table.Th>State</Table.Th>
                <Table.Th>Wave</Table.Th>
                <Table.Th>Progress</Table.Th>
                <Table.Th>Started</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((r) => (
                <Table.Tr key={r.id}>
                  <Table.Td>
                    <Link href={tenantPath(tenant, `/rollouts/${r.id}`)}>
                      {r.kind} on {r.total} sites
                    </Link>
                  </Table.Td>
                  <Table.Td>
                    <Badge color={STATE_COLOR[r.state]}>{r.state}</Badge>
                  </Table.Td>
                  <Table.Td>
                    {r.currentWave + 1} of {r.waves.length}
                  </Table.Td>
                  <Table.Td>
                    {r.counts.succeeded} / {r.total}
                  </Table.Td>
                  <Table.Td>{when(r.createdAt)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Card>
      <FirmwarePolicyCard />
    </Stack>
  );
}

/** One rollout: its waves and gates, live; pause, resume and abort for operators. */
export function RolloutPage({ rolloutId }: { rolloutId: string }) {
  const { tenant, can } = useSession();
  const loaded = useLoad(
    (signal) =>
      call('get', '/api/v1/tenants/{tenantId}/rollouts/{rolloutId}', {
        path: { tenantId: tenant.id, rolloutId },
        signal,
      }),
    [tenant.id, rolloutId],
  );
  const { reload } = loaded;
  useRolloutEvents(reload, rolloutId);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (loaded.error || !loaded.data)
    return <NotLoaded loaded={loaded} title="Rollout not available" label="Loading rollout" />;
  const r = loaded.data;
  const act = async (action: 'pause' | 'resume' | 'abort' | 'approve' | 'reject') => {
    setBusy(true);
    setError(null);
    try {
      const path = { tenantId: tenant.id, rolloutId };
      const approvalPath = { tenantId: tenant.id, approvalId: r.approval?.id ?? '' };
      if (action === 'approve')
        await call('post', '/api/v1/tenants/{tenantId}/approvals/{approvalId}/approve', {
          path: approvalPath,
          body: {},
        });
      else if (action === 'reject')
        await call('post', '/api/v1/tenants/{tenantId}/approvals/{approvalId}/reject', {
          path: approvalPath,
          body: {},
        });
      else if (action === 'pause')
        await call('post', '/api/v1/tenants/{tenantId}/rollouts/{rolloutId}/pause', { path });
      else if (action === 'resume')
        await call('post', '/api/v1/tenants/{tenantId}/rollouts/{rolloutId}/resume', { path });
      else await call('post', '/api/v1/tenants/{tenantId}/rollouts/{rolloutId}/abort', { path });
      reload();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Stack>
      <Text size="sm">
        <Link href={tenantPath(tenant, '/rollouts')}>Rollouts</Link> / {r.id.slice(0, 8)}
      </Text>
      <Group justify="space-between">
        <Title order={2}>
          Rollout: {r.kind} on {r.total} sites{' '}
          <Badge color={STATE_COLOR[r.state]} size="lg" data-testid="rollout-state">
            {r.state}
          </Badge>
        </Title>
        {can('operator') && (
          <Group gap="xs">
            {r.state === 'running' && (
              <Button variant="default" loading={busy} onClick={() => void act('pause')}>
                Pause
              </Button>
            )}
            {(r.state === 'paused' || r.state === 'halted') && (
              <Button loading={busy} onClick={() => void act('resume')}>
                Resume
              </Button>
            )}
            {['pending_approval', 'running', 'paused', 'halted'].includes(r.state) && (
              <Button color="red" variant="light" loading={busy} onClick={() => void act('abort')}>
                Abort
              </Button>
            )}
          </Group>
        )}
      </Group>
      <ErrorAlert error={error} />
      {r.state === 'pending_approval' && r.approval?.state === 'pending' && (
        <Card withBorder data-testid="rollout-approval">
          <Group justify="space-between">
            <Text size="sm">
              Waits for approval by {r.approval.requiredRole} · {r.approval.reasons.join('; ')} · expires{' '}
              {when(r.approval.expiresAt)}
            </Text>
            {can('operator') && (
              <Group gap="xs">
                <Button loading={busy} onClick={() => void act('approve')}>
                  Approve
                </Button>
                <Button variant="default" color="red" loading={busy} onClick={() => void act('reject')}>
                  Reject
                </Button>
              </Group>
            )}
          </Group>
        </Card>
      )}
      {r.reason && (
        <Text c={r.state === 'halted' ? 'red' : 'dimmed'} data-testid="rollout-reason">
          {r.reason}
        </Text>
      )}
      <Card withBorder>
        <Summary r={r} />
      </Card>
      <Card withBorder padding={0}>
        <Table>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Wave</Table.Th>
              <Table.Th>Sites</Table.Th>
              <Table.Th>State</Table.Th>
              <Table.Th>Jobs</Table.Th>
              <Table.Th>Health gates</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {r.waves.map((w) => (
              <Table.Tr key={w.index} data-testid={`wave-${w.index + 1}`}>
                <Table.Td>
                  {w.index === 0 ? 'Canary' : `Wave ${w.index + 1}`}
                  {w.attempt > 0 ? ` (attempt ${w.attempt + 1})` : ''}
                </Table.Td>
                <Table.Td>{w.sites}</Table.Td>
                <Table.Td>
                  <Badge color={STATE_COLOR[w.state]}>{w.state}</Badge>
                </Table.Td>
                <Table.Td>
                  {w.batchId ? (
                    <Link href={tenantPath(tenant, `/jobs/batches/${w.batchId}`)}>
                      {Object.entries(w.jobs)
                        .map(([s, n]) => `${n} ${s}`)
                        .join(', ') || 'jobs'}
                    </Link>
                  ) : (
                    '—'
                  )}
                </Table.Td>
                <Table.Td>
                  {w.gate
                    ? w.gate.passed
                      ? `passed (${w.gate.failures} of ${w.gate.sites} failing, ${w.gate.allowed} allowed)`
                      : `failed: ${Object.entries(w.gate.causes)
                          .map(([c, n]) => `${n} ${c}`)
                          .join(', ')}`
                    : '—'}
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Card>
      <Text size="xs" c="dimmed">
        Started {when(r.createdAt)} by {r.requestedBy.label ?? r.requestedBy.type}
        {r.finishedAt ? ` · ended ${when(r.finishedAt)}` : ''}
      </Text>
    </Stack>
  );
}
