import { LineChart, type LineChartSeries } from '@mantine/charts';
import { ScrollArea, SegmentedControl, Select, SimpleGrid, Stack, Text } from '@mantine/core';
import type { LogLine, TelemetryHistory, TelemetryRange } from '@backplane/contracts';
import { useEffect, useRef, useState } from 'react';
import { api, ApiError } from '../../api';
import { Panel } from '../../components';
import { useSiteStream } from '../../realtime';
import { bits, ms, percent } from '../../format';
import { useLoad } from '../../util';

const WINDOW = 60;

interface Point {
  time: string;
  rx: number;
  tx: number;
}

/** `monitor-traffic` of one interface, one point a second, the last minute. */
export function LiveTraffic({ base, siteId, online }: { base: string; siteId: string; online: boolean }) {
  const ifaces = useLoad(
    async (signal) => {
      if (!online) return [];
      try {
        const r = await api<{ items: { name?: string; type?: string }[] }>('GET', `${base}/live/interfaces`, {
          signal,
        });
        return r.items.map((i) => i.name).filter((n): n is string => !!n);
      } catch (e) {
        if (e instanceof ApiError && e.status === 503) return [];
        throw e;
      }
    },
    [base, online],
  );
  const [iface, setIface] = useState<string | null>(null);
  const chosen = iface ?? ifaces.data?.[0] ?? null;
  const [points, setPoints] = useState<Point[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setPoints([]);
    setError(null);
  }, [chosen, siteId]);
  useSiteStream(
    siteId,
    'traffic',
    (p) => {
      const s = p.samples.find((x) => x.interface === chosen) ?? (p.samples.length === 1 ? p.samples[0] : undefined);
      if (!s) return;
      setError(null);
      setPoints((old) =>
        [...old, { time: new Date(p.at).toLocaleTimeString(), rx: s.rxBps, tx: s.txBps }].slice(-WINDOW),
      );
    },
    { iface: chosen ?? undefined, enabled: online && !!chosen, onError: setError },
  );
  const last = points.at(-1);
  return (
    <Panel
      title="Live traffic"
      actions={
        ifaces.data &&
        ifaces.data.length > 0 && (
          <Select
            aria-label="Interface"
            data={ifaces.data}
            value={chosen}
            onChange={setIface}
            allowDeselect={false}
            w={180}
            size="xs"
          />
        )
      }
    >
      {!online ? (
        <Text c="dimmed">The site is offline: no live traffic.</Text>
      ) : (
        <>
          <LineChart
            h={220}
            data={points}
            dataKey="time"
            series={[
              { name: 'rx', label: 'Receive', color: 'teal.6' },
              { name: 'tx', label: 'Transmit', color: 'indigo.6' },
            ]}
            curveType="monotone"
            withDots={false}
            withLegend
            valueFormatter={(v) => bits(v)}
            yAxisProps={{ width: 90 }}
            aria-label={`Traffic of ${chosen ?? 'an interface'}`}
          />
          <Text size="sm" c="dimmed" data-testid="traffic-points" data-count={points.length}>
            {error
              ? `Stream unavailable: ${error}`
              : last
                ? `${chosen ?? ''}: receive ${bits(last.rx)}, transmit ${bits(last.tx)} (${points.length} readings)`
                : 'Waiting for the first reading…'}
          </Text>
        </>
      )}
    </Panel>
  );
}

/** `/log listen` of the router: newest at the bottom, the last 200 lines. */
export function LogTail({ base, siteId, online }: { base: string; siteId: string; online: boolean }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [error, setError] = useState<string | null>(null);
  const viewport = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!online) return;
    const ac = new AbortController();
    api<{ items: Record<string, string>[] }>('GET', `${base}/live/logs`, { query: { limit: 50 }, signal: ac.signal })
      .then(
        (r) =>
          setLines((old) => [
            ...r.items.map((l) => ({ time: l['time'] ?? '', topics: l['topics'] ?? '', message: l['message'] ?? '' })),
            ...old,
          ]),
        () => undefined,
      )
      .catch(() => undefined);
    return () => ac.abort();
  }, [base, online]);
  useSiteStream(
    siteId,
    'logs',
    (p) => {
      setError(null);
      setLines((old) => [...old, ...p.lines].slice(-200));
    },
    { enabled: online, onError: setError },
  );
  useEffect(() => {
    viewport.current?.scrollTo({ top: viewport.current.scrollHeight });
  }, [lines]);
  return (
    <Panel title="Live log">
      {!online ? (
        <Text c="dimmed">The site is offline: no live log.</Text>
      ) : (
        <>
          <ScrollArea h={220} viewportRef={viewport} type="auto">
            <div role="log" aria-label="Router log" className="log-tail" tabIndex={0}>
              {lines.length === 0 ? (
                <Text c="dimmed" size="sm">
                  No log lines yet.
                </Text>
              ) : (
                lines.map((l, i) => (
                  <div key={i}>
                    <span className="log-time">{l.time}</span> <span className="log-topics">{l.topics}</span>{' '}
                    {l.message}
                  </div>
                ))
              )}
            </div>
          </ScrollArea>
          {error && (
            <Text size="sm" c="red">
              Stream unavailable: {error}
            </Text>
          )}
        </>
      )}
    </Panel>
  );
}

const RANGES: TelemetryRange[] = ['1h', '24h', '7d'];

const HISTORY_CHARTS: Omit<Parameters<typeof HistoryChart>[0], 'points'>[] = [
  {
    label: 'CPU and memory, %',
    series: [
      { name: 'cpu', label: 'CPU', color: 'orange.6' },
      { name: 'memory', label: 'Memory', color: 'grape.6' },
    ],
    format: percent,
    yAxisProps: { domain: [0, 100] },
  },
  {
    label: 'Traffic (all interfaces)',
    series: [
      { name: 'rx', label: 'Receive', color: 'teal.6' },
      { name: 'tx', label: 'Transmit', color: 'indigo.6' },
    ],
    format: bits,
    yAxisProps: { width: 90 },
  },
  {
    label: 'Tunnel latency, ms',
    series: [{ name: 'latency', label: 'Latency', color: 'cyan.6' }],
    format: ms,
    yAxisProps: { width: 70 },
  },
];

/** Stored telemetry, downsampled by the api: CPU, memory, traffic and latency over 1 h, 24 h or 7 d. */
export function History({ base }: { base: string }) {
  const [range, setRange] = useState<TelemetryRange>('1h');
  const history = useLoad(
    (signal) => api<TelemetryHistory>('GET', `${base}/telemetry`, { query: { range }, signal }),
    [base, range],
  );
  const fmtTime = (iso: string) =>
    range === '7d'
      ? new Date(iso).toLocaleDateString(undefined, { weekday: 'short', hour: '2-digit' })
      : new Date(iso).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  const points = (history.data?.points ?? []).map((p) => ({
    time: fmtTime(p.at),
    cpu: p.cpuLoad,
    memory: p.memoryUsed !== null && p.memoryTotal ? Math.round((100 * p.memoryUsed) / p.memoryTotal) : null,
    rx: p.rxBps,
    tx: p.txBps,
    latency: p.latencyMs,
  }));
  return (
    <Panel
      title="History"
      actions={
        <SegmentedControl
          aria-label="History range"
          size="xs"
          value={range}
          onChange={(v) => setRange(v as TelemetryRange)}
          data={RANGES}
        />
      }
    >
      {history.error ? (
        <Text c="dimmed">History unavailable: {history.error}</Text>
      ) : points.length === 0 ? (
        <Text c="dimmed">{history.loading ? 'Loading…' : 'No samples in this range yet.'}</Text>
      ) : (
        <Stack gap="md">
          <Text size="xs" c="dimmed" data-testid="history-points">
            {points.length} point{points.length === 1 ? '' : 's'}, one per {history.data!.stepSeconds} s
          </Text>
          <SimpleGrid cols={{ base: 1, md: 3 }}>
            {HISTORY_CHARTS.map((c) => (
              <HistoryChart key={c.label} {...c} points={points} />
            ))}
          </SimpleGrid>
        </Stack>
      )}
    </Panel>
  );
}

/**
 * One chart of the history panel. A LineChart, not Mantine's AreaChart: that one wraps each
 * area in a Fragment, which recharts 2 does not see through under React 19 (react-is 18), so
 * it drew nothing at all.
 */
function HistoryChart(props: {
  label: string;
  points: Record<string, string | number | null>[];
  series: LineChartSeries[];
  format: (v: number) => string;
  yAxisProps: { domain?: [number, number]; width?: number };
}) {
  return (
    <div>
      <Text size="sm" fw={500}>
        {props.label}
      </Text>
      <LineChart
        h={160}
        data={props.points}
        dataKey="time"
        series={props.series}
        withDots={false}
        connectNulls
        valueFormatter={(v) => props.format(v)}
        yAxisProps={props.yAxisProps}
      />
    </div>
  );
}
