/**
 * `/system scheduler`: runs `on-event` at the entry's times (model/schedule.ts): once at
 * boot for `start-time=startup`, every `interval`, or once at a start date and time.
 * `on-event` may name a /system script or be script source. Times are the router's
 * clock, so RouterState.advance() / setTimeScale() (the control endpoint's `clock`) make a
 * run minutes away happen now.
 */
import type { Session } from '../model/engine';
import { nextRunAfter, runIn, scheduleOf } from '../model/schedule';
import type { Item } from '../model/state';
import { POLICIES, type Policy } from '../model/types';
import type { ScriptHost } from './host';

const MAX_TIMER = 2 ** 31 - 1;

export class Scheduler {
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private readonly busy = new Set<number>();
  private readonly armed = new Map<number, string>();
  /** Wall-clock ms up to which an entry's runs have been considered. */
  private readonly seen = new Map<number, number>();
  private off: (() => void) | undefined;
  private offClock: (() => void) | undefined;
  private controller = new AbortController();
  /** Runs in progress (tests wait for them). */
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly host: ScriptHost) {}

  private get state() {
    return this.host.state;
  }

  /** Boot: startup entries run once, every entry is armed; later changes re-arm. */
  start(): void {
    this.stop();
    this.controller = new AbortController();
    for (const item of this.state.items('system/scheduler')) {
      // startup entries count their interval from this boot
      if (item.values['.anchor'] !== undefined) this.state.update('system/scheduler', item, { '.anchor': undefined });
    }
    for (const item of this.state.items('system/scheduler')) {
      if (item.values['disabled'] === 'true') continue;
      if ((item.values['start-time'] ?? 'startup') === 'startup') this.fire(item.id);
      this.arm(item, true);
    }
    this.off = this.state.onChange((e) => {
      if (e.store !== 'system/scheduler') return;
      if (!e.item) this.disarm(e.id);
      else this.arm(e.item, false);
    });
    this.offClock = this.state.onClock(() => {
      for (const id of [...this.armed.keys()]) this.check(id);
    });
  }

  stop(): void {
    this.off?.();
    this.off = undefined;
    this.offClock?.();
    this.offClock = undefined;
    this.controller.abort();
    for (const id of [...this.armed.keys()]) this.disarm(id);
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
    if (t) clearTimeout(t);
    this.timers.delete(id);
    this.armed.delete(id);
    this.seen.delete(id);
  }

  private arm(item: Item, atBoot: boolean): void {
    const v = item.values;
    const key = [v['start-date'], v['start-time'], v['interval'], v['disabled']].join('|');
    if (this.armed.get(item.id) === key) return;
    this.disarm(item.id);
    if (v['disabled'] === 'true') return;
    this.armed.set(item.id, key);
    const wall = this.state.wallNow();
    this.seen.set(item.id, wall);
    if (!atBoot && (v['start-time'] ?? 'startup') === 'startup') {
      // added (or changed) after boot: the interval counts from now
      this.state.update('system/scheduler', item, { '.anchor': String(wall) });
    }
    this.check(item.id);
  }

  /** Runs the entry if one of its times has passed since the last look; sets the next timer. */
  private check(id: number): void {
    const old = this.timers.get(id);
    if (old) clearTimeout(old);
    this.timers.delete(id);
    const item = this.state.get('system/scheduler', id);
    if (!item || !this.armed.has(id)) return;
    const schedule = scheduleOf(this.state, item);
    const wall = this.state.wallNow();
    const last = this.seen.get(id) ?? wall;
    this.seen.set(id, Math.max(last, wall));
    if (runIn(schedule, last, wall) !== undefined) this.fire(id);
    const next = nextRunAfter(schedule, wall);
    if (next === undefined) return;
    const delay = Math.min(MAX_TIMER, Math.max(1, Math.ceil((next - wall) / this.state.timeScale) + 1));
    const timer = setTimeout(() => this.check(id), delay);
    timer.unref();
    this.timers.set(id, timer);
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
