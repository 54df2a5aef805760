import { Alert, Badge, Button, Card, Group, Loader, Modal, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import type { TelemetrySample } from '@backplane/contracts';
import { useState } from 'react';
import { api, ApiError, errorText, type Site, type SiteHealth, type TunnelEvent } from '../api';
import { Copyable, Facts, NotLoaded, Panel, TableHead } from '../components';
import { JobsTable, MoreButton, TERMINAL, useJobList, type Job } from '../jobs';
import { usePlatformNames } from '../names';
import { useSiteStream, useTenantEvents } from '../realtime';
import { Link, navigate } from '../router';
import { tenantPath, useSession } from '../session';
import { bytes, duration, ms, percent } from '../format';
import { ago, siteState, STATE_COLOR, useLoad, when } from '../util';
import { Backups } from './site/Backups';
import { CommandConsole } from './site/Console';
import { History, LiveTraffic, LogTail } from './site/Live';

interface Tunnel {
  online: boolean;
  address?: string;
  regionSlug?: string;
  gatewayId?: string;
  sourceIp?: string;
  connectedSince?: string;
  bytesIn?: number;
  bytesOut?: number;
  latencyMs?: number | null;
}

type Live = { identity: string | null; resources: Record<string, string> } | { unavailable: string };

export function SitePage({ siteId }: { siteId: string }) {
  const { tenant, can, me } = useSession();
  const names = usePlatformNames(me.platformOperator);
  const base = `/tenants/${tenant.id}/sites/${siteId}`;
  const site = useLoad((signal) => api<Site>('GET', base, { signal }), [base]);
  const health = useLoad((signal) => api<SiteHealth>('GET', `${base}/health`, { signal }), [base]);
  const events = useLoad(
    (signal) => api<{ items: TunnelEvent[] }>('GET', `${base}/tunnel/events`, { query: { limit: 20 }, signal }),
    [base],
  );
  const live = useLoad<Live>(
    async (signal) => {
      try {
        const [id, res] = await Promise.all([
          api<{ name: string | null }>('GET', `${base}/live/identity`, { signal }),
          api<Record<string, string>>('GET', `${base}/live/resources`, { signal }),
        ]);
        return { identity: id.name, resources: res };
      } catch (e) {
        if (e instanceof ApiError && (e.status === 503 || e.status === 409 || e.status === 404))
          return { unavailable: e.reason ?? e.message };
        throw e;
      }
    },
    [base],
  );
  const tunnel = useLoad((signal) => api<Tunnel>('GET', `${base}/tunnel`, { signal }), [base]);
  const jobs = useJobList({ siteId }, 20);
  const [sample, setSample] = useState<TelemetrySample | null>(null);
  const [liveState, setLiveState] = useState<string | null>(null);
  const [gone, setGone] = useState(false);
  const { reload: reloadSite } = site;
  const { reload: reloadTunnel } = tunnel;
  const { reload: reloadHealth } = health;
  const { reload: reloadLive } = live;

  // The status changes while the page is open: badge, tunnel facts and router values follow.
  useTenantEvents(
    (e) => {
      if (e.type === 'site.status' && e.data.siteId === siteId) {
        setLiveState(e.data.health ?? (e.data.online ? 'online' : 'offline'));
        reloadTunnel();
        reloadHealth();
        reloadSite();
        if (e.data.online) reloadLive();
      } else if (e.type === 'site.changed' && e.data.siteId === siteId) {
        if (e.data.change === 'deleted') setGone(true);
        else reloadSite();
      }
    },
    () => {
      reloadSite();
      reloadTunnel();
      reloadHealth();
    },
  );
  useSiteStream(siteId, 'telemetry', setSample);

  const [command, setCommand] = useState<{ command: string; expiresAt: string } | null>(null);
  const [confirm, setConfirm] = useState<'reboot' | 'delete' | 'recreate' | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const run = async (fn: () => Promise<void>) => {
    setBusy(true);
    setActionError(null);
    try {
      await fn();
    } catch (e) {
      setActionError(errorText(e));
    } finally {
      setBusy(false);
      setConfirm(null);
    }
  };

  if (site.error || !site.data) return <NotLoaded loaded={site} title="Site not available" label="Loading site" />;
  const s = site.data;
  const st = liveState ?? siteState(s);
  const online = liveState ? liveState === 'online' : s.status.online;
  const liveData = live.data && 'resources' in live.data ? live.data : null;
  const tun = tunnel.data?.online ? tunnel.data : null;
  const res = liveData?.resources;
  const memUsed = sample?.memoryUsed ?? (res ? Number(res['total-memory']) - Number(res['free-memory']) : null);
  const memTotal = sample?.memoryTotal ?? (res ? Number(res['total-memory']) : null);
  const cpu = sample?.cpuLoad ?? (res?.['cpu-load'] !== undefined ? Number(res['cpu-load']) : null);
  const recreating = jobs.items.find((j) => j.kind === 'recreate-tunnel' && !TERMINAL.has(j.state));

  return (
    <Stack>
      <Text size="sm">
        <Link href={tenantPath(tenant)}>Fleet</Link> / {s.name}
      </Text>
      {gone && (
        <Alert color="orange" role="alert">
          This site was deleted.
        </Alert>
      )}
      <Group justify="space-between" align="start">
        <Group gap="sm">
          <Title order={2}>{s.name}</Title>
          <Badge
            color={STATE_COLOR[st as keyof typeof STATE_COLOR] ?? 'gray'}
            size="lg"
            variant="light"
            data-testid="site-status"
            role="status"
            aria-live="polite"
          >
            {st}
          </Badge>
        </Group>
        {can('operator') && (
          <Group gap="xs" aria-label="Site actions" role="group">
            <Button
              variant="default"
              loading={busy && !confirm}
              onClick={() => void run(async () => setCommand(await api('POST', `${base}/onboarding`)))}
            >
              Onboarding command
            </Button>
            <Button variant="default" onClick={() => setConfirm('recreate')} loading={!!recreating}>
              Recreate tunnel
            </Button>
            <Button variant="default" color="orange" onClick={() => setConfirm('reboot')} disabled={!online}>
              Reboot router
            </Button>
            {can('admin') && (
              <Button variant="light" color="red" onClick={() => setConfirm('delete')}>
                Delete site
              </Button>
            )}
          </Group>
        )}
      </Group>
      {actionError && (
        <Alert color="red" role="alert" withCloseButton onClose={() => setActionError(null)}>
          {actionError}
        </Alert>
      )}
      {notice && (
        <Alert color="teal" role="status" withCloseButton onClose={() => setNotice(null)}>
          {notice}
        </Alert>
      )}
      {command && (
        <Card withBorder>
          <Stack gap="xs">
            <Text fw={600}>Paste this line into the router's terminal</Text>
            <Copyable value={command.command} label="onboarding command" />
            <Text size="sm" c="dimmed">
              Works once, until {when(command.expiresAt)}.
            </Text>
          </Stack>
        </Card>
      )}
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <Panel title="Tunnel">
          <Facts
            rows={[
              ['Tunnel address', <span className="mono">{s.mgmtAddress}</span>],
              ['Status', st],
              [
                'Connected since',
                tun?.connectedSince ? `${when(tun.connectedSince)} (${ago(tun.connectedSince)})` : '—',
              ],
              ['Source IP', tun?.sourceIp ? <span className="mono">{tun.sourceIp}</span> : '—'],
              [
                'Tunnel traffic',
                tun || sample
                  ? `${bytes(sample?.tunnelBytesIn ?? tun?.bytesIn ?? null)} in / ${bytes(sample?.tunnelBytesOut ?? tun?.bytesOut ?? null)} out`
                  : '—',
              ],
              ['Latency', ms(sample?.latencyMs ?? tun?.latencyMs)],
              [
                'Last seen',
                `${ago(s.status.lastSeenAt)}${s.status.lastSeenAt ? ` (${when(s.status.lastSeenAt)})` : ''}`,
              ],
              [
                'Region',
                s.status.regionId
                  ? me.platformOperator
                    ? names.region(s.status.regionId)
                    : (tun?.regionSlug ?? names.region(s.status.regionId))
                  : 'not assigned yet',
              ],
              ['Gateway', names.gateway(tun?.gatewayId ?? s.status.gatewayId)],
              ['Health', health.data ? health.data.health : (health.error ?? '…')],
              ['Last poll', health.data ? ago(health.data.lastPollAt) : '…'],
              ['Missed polls', health.data?.missedPolls ?? '—'],
              ['Onboarded', health.data ? when(health.data.onboardedAt) : '…'],
            ]}
          />
        </Panel>
        <Panel title="Router">
          <Facts
            rows={[
              ['Identity', liveData ? liveData.identity : live.loading ? '…' : 'not reachable'],
              ['RouterOS version', liveData?.resources['version'] ?? s.status.routerosVersion ?? '—'],
              ['Board', liveData?.resources['board-name'] ?? s.status.board ?? '—'],
              ['Uptime', sample?.uptimeSeconds != null ? duration(sample.uptimeSeconds) : (res?.['uptime'] ?? '—')],
              ['CPU load', percent(cpu)],
              [
                'Memory',
                memUsed !== null && memTotal && !Number.isNaN(memUsed)
                  ? `${bytes(memUsed)} of ${bytes(memTotal)} (${percent((100 * memUsed) / memTotal)})`
                  : '—',
              ],
              ['Tags', s.tags.length ? s.tags.join(', ') : '—'],
              ['Address', s.location.address ?? '—'],
              ['Created', when(s.createdAt)],
            ]}
          />
          {live.data && 'unavailable' in live.data && (
            <Text size="sm" c="dimmed" mt="xs">
              Live values unavailable: {live.data.unavailable}
            </Text>
          )}
        </Panel>
      </SimpleGrid>
      {s.notes && (
        <Panel title="Notes">
          <Text style={{ whiteSpace: 'pre-wrap' }}>{s.notes}</Text>
        </Panel>
      )}
      <Panel title="Recent tunnel events">
        {events.error ? (
          <Text c="dimmed">{events.error}</Text>
        ) : !events.data ? (
          <Loader size="sm" aria-label="Loading events" />
        ) : events.data.items.length === 0 ? (
          <Text c="dimmed">No tunnel events yet.</Text>
        ) : (
          <Table.ScrollContainer minWidth={500}>
            <Table striped>
              <TableHead columns={['Time', 'Event', 'From', 'Gateway', 'Traffic']} />
              <Table.Tbody>
                {events.data.items.map((e) => (
                  <Table.Tr key={e.id}>
                    <Table.Td>{when(e.at)}</Table.Td>
                    <Table.Td>
                      {e.type}
                      {e.accepted === false ? ' (refused)' : ''}
                      {e.reason ? `: ${e.reason}` : ''}
                    </Table.Td>
                    <Table.Td className="mono">{e.sourceIp ?? '—'}</Table.Td>
                    <Table.Td>{names.gateway(e.gatewayId)}</Table.Td>
                    <Table.Td>
                      {e.bytesIn !== null || e.bytesOut !== null
                        ? `${bytes(e.bytesIn)} in / ${bytes(e.bytesOut)} out`
                        : '—'}
                      {e.durationSeconds !== null ? ` · ${Math.round(e.durationSeconds / 60)} min` : ''}
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
      </Panel>
      <SimpleGrid cols={{ base: 1, lg: 2 }}>
        <LiveTraffic base={base} siteId={siteId} online={online} />
        <LogTail base={base} siteId={siteId} online={online} />
      </SimpleGrid>
      <History base={base} />
      <Panel
        title="Jobs"
        actions={<Link href={tenantPath(tenant, `/jobs?site=${siteId}`)}>All jobs of this site</Link>}
      >
        {jobs.error ? (
          <Text c="dimmed">{jobs.error}</Text>
        ) : jobs.items.length === 0 ? (
          <Text c="dimmed">{jobs.loading ? 'Loading…' : 'No jobs for this site yet.'}</Text>
        ) : (
          <JobsTable jobs={jobs.items} showSite={false} />
        )}
        <MoreButton list={jobs} />
      </Panel>
      <Backups base={base} siteId={siteId} onJob={jobs.add} />
      {can('operator') && <CommandConsole base={base} jobs={jobs.items} onJob={jobs.add} />}
      <Modal
        opened={confirm !== null}
        onClose={() => setConfirm(null)}
        title={
          confirm === 'delete'
            ? 'Delete this site?'
            : confirm === 'recreate'
              ? 'Recreate the tunnel?'
              : 'Reboot this router?'
        }
      >
        <Stack>
          <Text>
            {confirm === 'delete'
              ? `${s.name} and its tunnel parameters are removed. The router keeps its configuration but can no longer connect.`
              : confirm === 'recreate'
                ? `${s.name} gets new tunnel credentials. The router is repaired over the tunnel now, or at its next poll if the tunnel is down; it reconnects with the new parameters.`
                : `${s.name} restarts now; it is offline until it has booted and reconnected.`}
          </Text>
          <Group justify="end">
            <Button variant="default" onClick={() => setConfirm(null)}>
              Cancel
            </Button>
            <Button
              color={confirm === 'delete' ? 'red' : 'orange'}
              loading={busy}
              onClick={() =>
                void run(async () => {
                  if (confirm === 'delete') {
                    await api('DELETE', base);
                    navigate(tenantPath(tenant));
                  } else if (confirm === 'recreate') {
                    jobs.add(await api<Job>('POST', `${base}/recreate-tunnel`));
                    setNotice('Tunnel recreation started: follow it in the jobs below.');
                  } else {
                    await api('POST', `${base}/reboot`);
                    setNotice('Reboot requested.');
                  }
                })
              }
            >
              {confirm === 'delete' ? 'Delete site' : confirm === 'recreate' ? 'Recreate tunnel' : 'Reboot'}
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Stack>
  );
}
