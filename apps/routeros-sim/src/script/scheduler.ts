/**
 * `/system scheduler`: runs `on-event` every `interval`, and once at boot for
 * `start-time=startup`. `on-event` may name a /system script or be script source.
 */
import type { Session } from '../model/engine';
import type { Item } from '../model/state';
import { POLICIES, type Policy } from '../model/types';
import { parseDuration } from '../model/values';
import type { ScriptHost } from './host';

export class Scheduler {
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private readonly busy = new Set<number>();
  private readonly armed = new Map<number, string>();
  private off: (() => void) | undefined;
  private controller = new AbortController();
  /** Runs in progress (tests wait for them). */
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly host: ScriptHost) {}

  private get state() {
    return this.host.state;
  }

  /** Boot: startup entries run once, interval entries are armed; later changes re-arm. */
  start(): void {
    this.stop();
    this.controller = new AbortController();
    for (const item of this.state.items('system/scheduler')) {
      if (item.values['disabled'] === 'true') continue;
      if ((item.values['start-time'] ?? 'startup') === 'startup') this.fire(item.id);
      this.arm(item);
    }
    this.off = this.state.onChange((e) => {
      if (e.store !== 'system/scheduler') return;
      if (!e.item) this.disarm(e.id);
      else this.arm(e.item);
    });
  }

  stop(): void {
    this.off?.();
    this.off = undefined;
    this.controller.abort();
    for (const id of [...this.timers.keys()]) this.disarm(id);
  }

  /** Aborted when the router stops or reboots (scheduler runs and background jobs). */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Resolves when every run in progress has finished. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  private disarm(id: number): void {
    const t = this.timers.get(id);
    if (t) clearInterval(t);
    this.timers.delete(id);
    this.armed.delete(id);
  }

  private arm(item: Item): void {
    const interval = parseDuration(item.values['interval'] ?? '0s') ?? 0;
    const key = `${interval}:${item.values['disabled'] ?? 'false'}`;
    if (this.armed.get(item.id) === key) return;
    this.disarm(item.id);
    this.armed.set(item.id, key);
    if (item.values['disabled'] === 'true' || interval <= 0) return;
    const timer = setInterval(() => this.fire(item.id), Math.max(10, interval * 1000));
    timer.unref();
    this.timers.set(item.id, timer);
  }

  private fire(id: number): void {
    if (this.busy.has(id)) return;
    const run = this.runItem(id).finally(() => {
      this.busy.delete(id);
      this.running.delete(run);
    });
    this.busy.add(id);
    this.running.add(run);
  }

  private async runItem(id: number): Promise<void> {
    const menu = this.state.menu('system/scheduler');
    const item = this.state.get(menu, id);
    if (!item || item.values['disabled'] === 'true') return;
    this.state.update(menu, item, { 'run-count': String(Number(item.values['run-count'] ?? 0) + 1) });
    const event = item.values['on-event'] ?? '';
    const script = this.state.find('system/script', { name: event });
    const source = script ? (script.values['source'] ?? '') : event;
    const fallback = menu.props.find((p) => p.name === 'policy')?.default;
    const policy = item.values['policy'] ?? (typeof fallback === 'string' ? fallback : '');
    const policies = new Set(policy.split(',').filter((p): p is Policy => (POLICIES as readonly string[]).includes(p)));
    const session: Session = {
      user: item.values['owner'] ?? 'admin',
      group: '',
      policies,
      address: '',
      via: 'scheduler',
    };
    const result = await this.host.run(source, { session, signal: this.controller.signal });
    if (!result.ok && !this.controller.signal.aborted) {
      this.state.log(
        'script,error',
        `executing script from scheduler (${item.values['name'] ?? ''}) failed, please check it manually`,
      );
    }
  }
}
