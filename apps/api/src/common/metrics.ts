import { Counter, Histogram, type Registry } from 'prom-client';

/** API metrics: labels are route patterns and reasons, never ids (no per-site/user series). */
export class ApiMetrics {
  readonly requestDuration: Histogram<'method' | 'route' | 'status_code'>;
  readonly authFailures: Counter<'reason'>;
  readonly rateLimited: Counter<'kind'>;

  constructor(registry: Registry) {
    this.requestDuration = new Histogram({
      name: 'backplane_api_request_duration_seconds',
      help: 'API request latency by route pattern',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
    this.authFailures = new Counter({
      name: 'backplane_api_auth_failures_total',
      help: 'Refused authentication attempts by reason',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.rateLimited = new Counter({
      name: 'backplane_api_rate_limited_total',
      help: 'Requests refused by rate limits (api: per-client limit, login: login throttling)',
      labelNames: ['kind'],
      registers: [registry],
    });
  }
}
