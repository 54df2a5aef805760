/**
 * Self-monitoring files (promtool is not available): deploy/prometheus/rules.yml and the
 * Grafana dashboard parse, every rule has the fields Prometheus needs, and every metric name
 * in every expression is one the apps export — registered in apps/ or libs/ source (prom-client
 * `new Counter|Gauge|Histogram({ name })`, the api's realtime `gauge('…')`), prom-client's
 * default process metrics, or Prometheus' own `up`.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { load } from 'js-yaml';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (f === 'node_modules' || f === 'generated') return [];
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return p.endsWith('.ts') && !p.endsWith('.spec.ts') ? [p] : [];
  });
}

/** Metric names registered in the apps and libs, with the series a histogram exposes. */
function exportedMetrics(): Set<string> {
  const names = new Set<string>(['up']);
  const reg = new Registry();
  collectDefaultMetrics({ register: reg });
  for (const m of reg.getMetricsAsArray()) names.add(m.name);
  const histograms = new Set<string>();
  for (const file of [...sourceFiles(join(ROOT, 'apps')), ...sourceFiles(join(ROOT, 'libs'))]) {
    const src = readFileSync(file, 'utf8');
    for (const m of src.matchAll(/new (Counter|Gauge|Histogram|Summary)\(\{\s*name: '([a-z_:][a-z0-9_:]*)'/g)) {
      names.add(m[2]!);
      if (m[1] === 'Histogram' || m[1] === 'Summary') histograms.add(m[2]!);
    }
    for (const m of src.matchAll(/\bgauge\(\s*'([a-z_:][a-z0-9_:]*)'/g)) names.add(m[1]!);
  }
  for (const h of histograms) for (const s of ['_bucket', '_sum', '_count']) names.add(h + s);
  for (const m of reg.getMetricsAsArray()) {
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
  }
  return names;
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'le']);

/** The metric names a PromQL expression reads. */
function metricNames(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""') // strings
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '') // label lists
    .replace(/\b\d+(\.\d+)?(e[+-]?\d+)?\b/gi, ''); // numbers
  const out: string[] = [];
  for (const m of s.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b\s*(\()?/g)) {
    if (m[2]) continue; // a function or aggregation
    if (KEYWORDS.has(m[1]!.toLowerCase())) continue;
    out.push(m[1]!);
  }
  return out;
}

interface Rule {
  alert?: string;
  record?: string;
  expr?: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const rulesFile = load(readFileSync(join(ROOT, 'deploy/prometheus/rules.yml'), 'utf8')) as {
  groups: { name: string; rules: Rule[] }[];
};
const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/backplane.json'), 'utf8')) as {
  uid: string;
  panels: { id: number; title: string; targets: { expr: string; refId: string }[] }[];
};

describe('self-monitoring: Prometheus rules and the Grafana dashboard', () => {
  const exported = exportedMetrics();

  it('the scan finds what the apps register (api, worker, gateway, notifications, process)', () => {
    for (const n of [
      'backplane_api_request_duration_seconds_count',
      'backplane_worker_queue_jobs',
      'backplane_worker_notification_attempts_total',
      'backplane_worker_database_errors_total',
      'backplane_api_realtime_sockets',
      'gateway_relay_errors_total',
      'nodejs_eventloop_lag_p99_seconds',
    ]) {
      expect(exported.has(n), n).toBe(true);
    }
  });

  it('the expression parser catches a metric nobody exports', () => {
    expect(metricNames('sum by (state) (rate(backplane_worker_jobs_finished_total{kind="x"}[5m])) > 0')).toEqual([
      'backplane_worker_jobs_finished_total',
    ]);
    const bogus = metricNames('rate(backplane_worker_made_up_total[5m]) / on(instance) up').filter(
      (n) => !exported.has(n),
    );
    expect(bogus).toEqual(['backplane_worker_made_up_total']);
  });

  it('rules.yml: groups of alerting rules that Prometheus would load', () => {
    expect(rulesFile.groups.length).toBeGreaterThanOrEqual(4);
    const alerts = rulesFile.groups.flatMap((g) => g.rules);
    const names = alerts.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
    for (const r of alerts) {
      expect(r.alert, JSON.stringify(r)).toMatch(/^[A-Za-z][A-Za-z0-9]*$/);
      expect(typeof r.expr).toBe('string');
      if (r.for) expect(r.for).toMatch(/^\d+[smhd]$/);
      expect(['info', 'warning', 'critical']).toContain(r.labels?.severity);
      expect(r.annotations?.summary).toBeTruthy();
      // balanced brackets
      for (const [o, c] of [
        ['(', ')'],
        ['{', '}'],
        ['[', ']'],
      ] as const) {
        expect(r.expr!.split(o).length, `${r.alert} ${o}${c}`).toBe(r.expr!.split(c).length);
      }
    }
    // What the issue asks for: gateway down, queue backlog, delivery failures, database errors.
    const all = alerts.map((r) => r.expr).join('\n');
    expect(all).toContain('backplane_worker_gateways_down');
    expect(all).toContain('backplane_worker_queue_jobs');
    expect(all).toContain('backplane_worker_notification_attempts_total');
    expect(all).toContain('backplane_worker_database_errors_total');
  });

  it('every metric in every rule and dashboard expression is exported by an app', () => {
    const exprs = [
      ...rulesFile.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert}`, expr: r.expr! }))),
      ...dashboard.panels.flatMap((p) =>
        p.targets.map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr })),
      ),
    ];
    expect(exprs.length).toBeGreaterThan(25);
    const unknown = exprs.flatMap((e) =>
      metricNames(e.expr)
        .filter((n) => !exported.has(n))
        .map((n) => `${e.where}: ${n}`),
    );
    expect(unknown).toEqual([]);
    for (const e of exprs) expect(metricNames(e.expr).length, e.where).toBeGreaterThan(0);
  });

  it('the dashboard is well-formed (unique panel ids, a Prometheus datasource variable)', () => {
    expect(dashboard.uid).toBe('backplane-overview');
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(dashboard.panels.every((p) => p.targets.length > 0)).toBe(true);
  });
});
