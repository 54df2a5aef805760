import {
  Alert,
  Badge,
  Button,
  Card,
  Group,
  Loader,
  SegmentedControl,
  SimpleGrid,
  Stack,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { useVirtualizer } from '@tanstack/react-virtual';
import { useCallback, useEffect, useRef, useState } from 'react';
import { api, errorText, type FleetHealth, type FleetSummary, type Page, type Site } from '../api';
import { usePlatformNames } from '../names';
import { Link } from '../router';
import { ErrorAlert } from '../components';
import { tenantPath, useSession } from '../session';
import { useTenantEvents } from '../realtime';
import { ago, STATE_COLOR, useLoad } from '../util';

const PAGE = 200;
const ROW = 48;

/**
 * Counts by health and region: one request (`/sites/summary`), whatever the fleet size. Live
 * events ask for a reload; reloads are coalesced to at most one a second.
 */
function useFleetSummary(tenantId: string, tick: number) {
  const [summary, setSummary] = useState<FleetSummary | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [again, setAgain] = useState(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => {
    const ac = new AbortController();
    api<FleetSummary>('GET', `/tenants/${tenantId}/sites/summary`, { signal: ac.signal }).then(
      (s) => {
        setSummary(s);
        setError(null);
      },
      (e: unknown) => !ac.signal.aborted && setError(errorText(e)),
    );
    return () => ac.abort();
  }, [tenantId, tick, again]);
  useEffect(() => () => clearTimeout(timer.current ?? undefined), []);
  const soon = useCallback(() => {
    timer.current ??= setTimeout(() => {
      timer.current = null;
      setAgain((n) => n + 1);
    }, 1000);
  }, []);
  return { summary, error, soon };
}

interface ListState {
  items: Site[];
  cursor: string | null;
  done: boolean;
  loading: boolean;
  error: string | null;
}

type HealthFilter = FleetHealth | 'all';
const HEALTH_FILTERS: { value: HealthFilter; label: string }[] = [
  { value: 'all', label: 'All' },
  { value: 'online', label: 'Online' },
  { value: 'degraded', label: 'Degraded' },
  { value: 'offline', label: 'Offline' },
  { value: 'pending', label: 'Pending' },
];

function useSiteList(tenantId: string, filters: { q: string; tag: string; health: HealthFilter }, tick: number) {
  const [state, setState] = useState<ListState>({ items: [], cursor: null, done: false, loading: true, error: null });
  const inflight = useRef<AbortController | null>(null);
  const key = `${tenantId}|${filters.q}|${filters.tag}|${filters.health}|${tick}`;
  const keyRef = useRef(key);
  keyRef.current = key;

  const fetchPage = useCallback(
    async (cursor: string | null, reset: boolean) => {
      inflight.current?.abort();
      const ac = new AbortController();
      inflight.current = ac;
      const myKey = key;
      setState((s) => ({
        ...s,
        loading: true,
        error: null,
        ...(reset ? { items: [], done: false, cursor: null } : {}),
      }));
      try {
        const page = await api<Page<Site>>('GET', `/tenants/${tenantId}/sites`, {
          query: {
            limit: PAGE,
            cursor,
            q: filters.q.trim() || undefined,
            tag: filters.tag.trim() || undefined,
            health: filters.health === 'all' ? undefined : filters.health,
          },
          signal: ac.signal,
        });
        if (keyRef.current !== myKey) return;
        setState((s) => ({
          items: reset ? page.items : [...s.items, ...page.items],
          cursor: page.nextCursor,
          done: page.nextCursor === null,
          loading: false,
          error: null,
        }));
      } catch (e) {
        if (ac.signal.aborted) return;
        setState((s) => ({ ...s, loading: false, error: errorText(e) }));
      }
    },
    // eslint wants every value; `key` covers all of them
    [key, tenantId, filters.q, filters.tag, filters.health],
  );

  useEffect(() => {
    void fetchPage(null, true);
    return () => inflight.current?.abort();
  }, [fetchPage]);

  const more = useCallback(() => {
    if (!state.loading && !state.done && state.cursor && !state.error) void fetchPage(state.cursor, false);
  }, [state, fetchPage]);
  /**
   * Live changes: replace, drop or (when the whole list is loaded and it passes the status
   * filter) add one site. A listed site whose health changes stays, with its new badge, until
   * the next reload.
   */
  const health = filters.health;
  const put = useCallback(
    (site: Site) => {
      setState((s) => {
        const i = s.items.findIndex((x) => x.id === site.id);
        if (i >= 0) return { ...s, items: s.items.map((x) => (x.id === site.id ? site : x)) };
        return s.done && (health === 'all' || site.health === health) ? { ...s, items: [...s.items, site] } : s;
      });
    },
    [health],
  );
  const patch = useCallback((id: string, fn: (site: Site) => Site) => {
    setState((s) =>
      s.items.some((x) => x.id === id) ? { ...s, items: s.items.map((x) => (x.id === id ? fn(x) : x)) } : s,
    );
  }, []);
  const remove = useCallback((id: string) => {
    setState((s) => ({ ...s, items: s.items.filter((x) => x.id !== id) }));
  }, []);
  return { ...state, more, put, patch, remove };
}

function Stat({ label, value, color, hint }: { label: string; value: string; color: string; hint?: string }) {
  return (
    <Card withBorder padding="md" role="group" aria-label={label}>
      <Text size="sm" c="dimmed">
        {label}
      </Text>
      <Text size="xl" fw={700} c={color} data-testid={`count-${label.toLowerCase()}`}>
        {value}
      </Text>
      {hint && (
        <Text size="xs" c="dimmed">
          {hint}
        </Text>
      )}
    </Card>
  );
}

export function FleetPage() {
  const { tenant, me, can } = useSession();
  const [q, setQ] = useState('');
  const [tag, setTag] = useState('');
  const [health, setHealth] = useState<HealthFilter>('all');
  const [tick, setTick] = useState(0);
  const [dq] = useDebouncedValue(q, 300);
  const [dtag] = useDebouncedValue(tag, 300);
  const { summary, error: countError, soon } = useFleetSummary(tenant.id, tick);
  const list = useSiteList(tenant.id, { q: dq, tag: dtag, health }, tick);
  const names = usePlatformNames(me.platformOperator);
  const regionNames = new Map(summary?.regions.map((r) => [r.regionId ?? '', r.regionName]) ?? []);
  const regionLabel = (id: string | null) => (id && regionNames.get(id)) || names.region(id);
  const { put, patch, remove } = list;
  // Open alerts per site (issue 20): a badge per row, refreshed on `alert.changed`.
  const alertCounts = useLoad(
    (signal) =>
      api<{ items: { siteId: string; firing: number; critical: number }[] }>(
        'GET',
        `/tenants/${tenant.id}/alerts/counts`,
        { signal },
      ).then((r) => new Map(r.items.map((c) => [c.siteId, c]))),
    [tenant.id, tick],
  );
  const reloadCounts = alertCounts.reload;

  useTenantEvents(
    (e) => {
      if (e.type === 'site.status') {
        const d = e.data;
        const h = d.health ?? (d.online ? 'online' : 'offline');
        patch(d.siteId, (s) => ({
          ...s,
          health: h,
          status: {
            ...s.status,
            online: d.online,
            lastSeenAt: d.online || h === 'degraded' ? e.at : s.status.lastSeenAt,
            ...(d.gatewayId ? { gatewayId: d.gatewayId } : {}),
          },
        }));
        soon();
      } else if (e.type === 'alert.changed') {
        reloadCounts();
      } else if (e.type === 'site.changed') {
        soon();
        if (e.data.change === 'deleted') remove(e.data.siteId);
        else void api<Site>('GET', `/tenants/${tenant.id}/sites/${e.data.siteId}`).then(put, () => undefined);
      }
    },
    () => setTick((t) => t + 1),
  );

  const parentRef = useRef<HTMLDivElement>(null);
  const virt = useVirtualizer({
    count: list.items.length + (list.done ? 0 : 1),
    getScrollElement: () => parentRef.current,
    estimateSize: () => ROW,
    overscan: 12,
  });
  const virtualItems = virt.getVirtualItems();
  const last = virtualItems[virtualItems.length - 1];
  useEffect(() => {
    if (last && last.index >= list.items.length - 40) list.more();
  }, [last, list]);

  const n = (v: number | undefined) => (summary && v !== undefined ? String(v) : '…');

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Fleet</Title>
        <Group gap="xs">
          <Button variant="default" onClick={() => setTick((t) => t + 1)}>
            Refresh
          </Button>
          {can('operator') && (
            <Button component={Link} href={tenantPath(tenant, '/onboard')}>
              Add a site
            </Button>
          )}
        </Group>
      </Group>
      {countError && <Alert color="red">{countError}</Alert>}
      <SimpleGrid cols={{ base: 2, sm: 3, lg: 5 }}>
        <Stat label="Online" value={n(summary?.online)} color="teal" hint="tunnel up" />
        <Stat label="Degraded" value={n(summary?.degraded)} color="orange" hint="polls, no tunnel" />
        <Stat label="Offline" value={n(summary?.offline)} color="red" hint="neither" />
        <Stat label="Pending" value={n(summary?.pending)} color="gray" hint="never seen" />
        <Stat label="Total" value={n(summary?.total)} color="indigo" />
      </SimpleGrid>
      {summary && summary.regions.length > 0 && (
        <Group gap="xs" aria-label="Sites by region" role="list">
          {summary.regions.map((r) => (
            <Badge
              key={r.regionId ?? 'none'}
              variant="light"
              color={r.regionId ? 'indigo' : 'gray'}
              role="listitem"
              size="lg"
              title={`${r.online} online, ${r.degraded} degraded, ${r.offline} offline, ${r.pending} pending`}
            >
              {r.regionName ?? regionLabel(r.regionId)}: {r.online}/{r.total} online
            </Badge>
          ))}
        </Group>
      )}
      <Group align="end" gap="sm" role="search" aria-label="Filter sites">
        <TextInput
          label="Search"
          placeholder="Part of a site name"
          value={q}
          onChange={(e) => setQ(e.currentTarget.value)}
          style={{ flex: '1 1 220px' }}
        />
        <TextInput
          label="Tag"
          placeholder="e.g. branch"
          value={tag}
          onChange={(e) => setTag(e.currentTarget.value.replace(/[\s,]/g, ''))}
          style={{ flex: '0 1 180px' }}
        />
        <div>
          <Text component="span" size="sm" fw={500} id="status-filter" display="block" mb={4}>
            Status
          </Text>
          {/* Radio inputs underneath: Tab reaches the group, arrow keys choose. */}
          <SegmentedControl
            aria-labelledby="status-filter"
            value={health}
            onChange={(v) => setHealth(v as HealthFilter)}
            data={HEALTH_FILTERS}
          />
        </div>
      </Group>
      <ErrorAlert error={list.error} />
      <Card withBorder padding={0}>
        <div className="site-row head" style={{ height: 40 }} role="presentation">
          <span>Name</span>
          <span>Status</span>
          <span>Alerts</span>
          <span className="wide">Tunnel address</span>
          <span className="wide">Region</span>
          <span className="wide">Last seen</span>
          <span className="wide">Tags</span>
        </div>
        <div
          ref={parentRef}
          style={{ height: 'max(320px, calc(100vh - 470px))', overflow: 'auto' }}
          role="list"
          aria-label="Sites"
          aria-busy={list.loading}
          data-testid="site-list"
        >
          {list.items.length === 0 && !list.loading && !list.error ? (
            <Text p="md" c="dimmed">
              No sites match.
            </Text>
          ) : (
            <div style={{ height: virt.getTotalSize(), position: 'relative' }}>
              {virtualItems.map((v) => {
                const s = list.items[v.index];
                const style = {
                  position: 'absolute' as const,
                  top: 0,
                  left: 0,
                  right: 0,
                  height: ROW,
                  transform: `translateY(${v.start}px)`,
                };
                if (!s)
                  return (
                    <div key="loader" style={style} role="listitem">
                      <Group justify="center" h={ROW}>
                        <Loader size="sm" aria-label="Loading more sites" />
                      </Group>
                    </div>
                  );
                const st = s.health;
                const open = alertCounts.data?.get(s.id);
                return (
                  <div key={s.id} style={style} role="listitem">
                    <Link href={tenantPath(tenant, `/sites/${s.id}`)} className="site-row" style={{ height: ROW }}>
                      <Text fw={500} truncate>
                        {s.name}
                      </Text>
                      <span>
                        <Badge color={STATE_COLOR[st]} variant="light" data-testid="site-state">
                          {st}
                        </Badge>
                      </span>
                      <span>
                        {open && open.firing > 0 && (
                          <Badge
                            color={open.critical > 0 ? 'red' : 'orange'}
                            variant="filled"
                            circle
                            data-testid="site-alerts"
                            aria-label={`${open.firing} open alert${open.firing === 1 ? '' : 's'}${
                              open.critical > 0 ? `, ${open.critical} critical` : ''
                            }`}
                            title={`${open.firing} open alert(s), ${open.critical} critical`}
                          >
                            {open.firing}
                          </Badge>
                        )}
                      </span>
                      <span className="wide mono">{s.mgmtAddress}</span>
                      <Text className="wide" size="sm" truncate>
                        {regionLabel(s.status.regionId)}
                      </Text>
                      <Text className="wide" size="sm" c="dimmed">
                        {ago(s.status.lastSeenAt)}
                      </Text>
                      <Text className="wide" size="sm" truncate>
                        {s.tags.join(', ')}
                      </Text>
                    </Link>
                  </div>
                );
              })}
            </div>
          )}
        </div>
      </Card>
      <Text size="xs" c="dimmed" aria-live="polite">
        {list.items.length} site{list.items.length === 1 ? '' : 's'} loaded{list.done ? '' : ', more as you scroll'}
      </Text>
    </Stack>
  );
}
