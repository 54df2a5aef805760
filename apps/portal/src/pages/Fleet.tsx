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
import { api, errorText, type Page, type Site } from '../api';
import { usePlatformNames } from '../names';
import { Link } from '../router';
import { tenantPath, useSession } from '../session';
import { ago, siteState, STATE_COLOR } from '../util';

const PAGE = 200;
const ROW = 48;

interface Counts {
  online: number;
  offline: number;
  pending: number;
  regions: Map<string, number>;
  done: boolean;
}

/**
 * Walks every page once (200 sites a request) to count states and regions; the list itself
 * pages lazily. The api has no summary endpoint yet: with one, this becomes a single request.
 */
function useFleetCounts(tenantId: string, tick: number): { counts: Counts | null; error: string | null } {
  const [counts, setCounts] = useState<Counts | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const ac = new AbortController();
    const c: Counts = { online: 0, offline: 0, pending: 0, regions: new Map(), done: false };
    setError(null);
    // Two cursor chains in parallel (online and not online) halve the time to a full count.
    const walk = async (online: 'true' | 'false') => {
      let cursor: string | null = null;
      do {
        const page: Page<Site> = await api<Page<Site>>('GET', `/tenants/${tenantId}/sites`, {
          query: { limit: PAGE, cursor, online },
          signal: ac.signal,
        });
        for (const s of page.items) {
          c[siteState(s)]++;
          const r = s.status.regionId ?? '';
          c.regions.set(r, (c.regions.get(r) ?? 0) + 1);
        }
        cursor = page.nextCursor;
        if (!ac.signal.aborted) setCounts({ ...c, regions: new Map(c.regions) });
      } while (cursor && !ac.signal.aborted);
    };
    Promise.all([walk('true'), walk('false')]).then(
      () => !ac.signal.aborted && setCounts({ ...c, regions: new Map(c.regions), done: true }),
      (e: unknown) => !ac.signal.aborted && setError(errorText(e)),
    );
    return () => ac.abort();
  }, [tenantId, tick]);
  return { counts, error };
}

interface ListState {
  items: Site[];
  cursor: string | null;
  done: boolean;
  loading: boolean;
  error: string | null;
}

function useSiteList(tenantId: string, filters: { q: string; tag: string; online: string }, tick: number) {
  const [state, setState] = useState<ListState>({ items: [], cursor: null, done: false, loading: true, error: null });
  const inflight = useRef<AbortController | null>(null);
  const key = `${tenantId}|${filters.q}|${filters.tag}|${filters.online}|${tick}`;
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
            online: filters.online === 'all' ? undefined : filters.online === 'online' ? 'true' : 'false',
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
    [key, tenantId, filters.q, filters.tag, filters.online],
  );

  useEffect(() => {
    void fetchPage(null, true);
    return () => inflight.current?.abort();
  }, [fetchPage]);

  const more = useCallback(() => {
    if (!state.loading && !state.done && state.cursor && !state.error) void fetchPage(state.cursor, false);
  }, [state, fetchPage]);
  return { ...state, more };
}

function Stat({ label, value, color }: { label: string; value: string; color: string }) {
  return (
    <Card withBorder padding="md" role="group" aria-label={label}>
      <Text size="sm" c="dimmed">
        {label}
      </Text>
      <Text size="xl" fw={700} c={color} data-testid={`count-${label.toLowerCase()}`}>
        {value}
      </Text>
    </Card>
  );
}

export function FleetPage() {
  const { tenant, me, can } = useSession();
  const [q, setQ] = useState('');
  const [tag, setTag] = useState('');
  const [online, setOnline] = useState('all');
  const [tick, setTick] = useState(0);
  const [dq] = useDebouncedValue(q, 300);
  const [dtag] = useDebouncedValue(tag, 300);
  const { counts, error: countError } = useFleetCounts(tenant.id, tick);
  const list = useSiteList(tenant.id, { q: dq, tag: dtag, online }, tick);
  const names = usePlatformNames(me.platformOperator);
  const regionLabel = names.region;

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

  const n = (v: number) => (counts ? (counts.done ? String(v) : `${v}…`) : '…');

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
      <SimpleGrid cols={{ base: 2, sm: 4 }}>
        <Stat label="Online" value={n(counts?.online ?? 0)} color="teal" />
        <Stat label="Offline" value={n(counts?.offline ?? 0)} color="red" />
        <Stat label="Pending" value={n(counts?.pending ?? 0)} color="gray" />
        <Stat
          label="Total"
          value={n((counts?.online ?? 0) + (counts?.offline ?? 0) + (counts?.pending ?? 0))}
          color="indigo"
        />
      </SimpleGrid>
      {counts && counts.regions.size > 0 && (
        <Group gap="xs" aria-label="Sites by region" role="list">
          {[...counts.regions.entries()]
            .sort((a, b) => b[1] - a[1])
            .map(([id, c]) => (
              <Badge key={id || 'none'} variant="light" color={id ? 'indigo' : 'gray'} role="listitem" size="lg">
                {regionLabel(id || null)}: {c}
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
          <SegmentedControl
            aria-labelledby="status-filter"
            value={online}
            onChange={setOnline}
            data={[
              { value: 'all', label: 'All' },
              { value: 'online', label: 'Online' },
              { value: 'offline', label: 'Offline' },
            ]}
          />
        </div>
      </Group>
      {list.error && (
        <Alert color="red" role="alert">
          {list.error}
        </Alert>
      )}
      <Card withBorder padding={0}>
        <div className="site-row head" style={{ height: 40 }} role="presentation">
          <span>Name</span>
          <span>Status</span>
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
                const st = siteState(s);
                return (
                  <div key={s.id} style={style} role="listitem">
                    <Link href={tenantPath(tenant, `/sites/${s.id}`)} className="site-row" style={{ height: ROW }}>
                      <Text fw={500} truncate>
                        {s.name}
                      </Text>
                      <span>
                        <Badge color={STATE_COLOR[st]} variant="light">
                          {st}
                        </Badge>
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
