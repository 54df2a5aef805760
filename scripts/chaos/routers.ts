/**
 * The campaign's simulated routers, in a child process of their own (`fork`): starts one
 * router per site, records every command each router executes (its effect log: session,
 * path, attributes, start and end), applies router faults (the simulator's switches, a
 * reboot) and precise triggers: when a router executes a matching command it holds the
 * reply until the parent has injected its fault (e.g. kill -9 of the worker that sent it).
 */
import { startRouter, type ReplySink, type Session, type SimRouter } from '../../apps/routeros-sim/src';
import type { Effect, RoutersReply, RoutersRequest, RouterSnapshot } from './protocol';

const routers = new Map<string, SimRouter>();
const effects: Effect[] = [];
const sessions = new WeakMap<Session, number>();
let nextSession = 1;
let seq = 0;
/** site -> armed triggers (regex on the command path), fired once. */
const armed = new Map<string, { id: number; re: RegExp }[]>();
const acks = new Map<number, () => void>();
/** Open script commands per connection: what runs meanwhile on it is the script's own doing. */
const scripts = new Map<number, number>();
const SCRIPT = /^\/(execute|system\/reset-configuration|system\/script\/run|import)$/;

const MUTATING = /\/(add|set|unset|remove|enable|disable|move|reboot|install|reset-configuration|import|execute|run)$/;

function send(msg: RoutersReply): void {
  process.send?.(msg);
}

function instrument(site: string, r: SimRouter): void {
  const engine = r.engine;
  const execute = engine.execute.bind(engine);
  engine.execute = (session, request, out) => {
    let sid = sessions.get(session);
    if (sid === undefined) sessions.set(session, (sid = nextSession++));
    const args: Record<string, string> = {};
    for (const [k, v] of request.args) if (k !== '.proplist') args[k] = v;
    const effect: Effect = {
      seq: ++seq,
      site,
      session: sid,
      command: request.command,
      args,
      mutating: MUTATING.test(request.command),
      start: Date.now(),
      end: null,
      outcome: 'open',
      nested: (scripts.get(sid) ?? 0) > 0,
    };
    effects.push(effect);
    const script = SCRIPT.test(request.command);
    if (script) scripts.set(sid, (scripts.get(sid) ?? 0) + 1);
    let closed = false;
    const close = () => {
      if (closed || !script) return;
      closed = true;
      scripts.set(sid, Math.max(0, (scripts.get(sid) ?? 1) - 1));
    };
    const triggers = armed.get(site) ?? [];
    const hit = triggers.find((t) => t.re.test(request.command));
    let held: (() => void)[] | undefined;
    if (hit) {
      armed.set(
        site,
        triggers.filter((t) => t !== hit),
      );
      held = [];
      const release = () => {
        const queued = held ?? [];
        held = undefined;
        for (const f of queued) f();
      };
      acks.set(hit.id, release);
      send({ type: 'trigger', id: hit.id, site, command: request.command, at: Date.now() });
      // Never hold a reply for ever (the parent may be gone).
      setTimeout(() => acks.get(hit.id)?.(), 5_000).unref();
    }
    const later = (f: () => void) => (held ? held.push(f) : f());
    const sink: ReplySink = {
      row: (v) => later(() => out.row(v)),
      empty: () => later(() => out.empty()),
      done: (ret) => {
        effect.end = Date.now();
        effect.outcome = 'done';
        close();
        later(() => out.done(ret));
      },
      trap: (t) => {
        effect.end = Date.now();
        effect.outcome = 'trap';
        close();
        effect.error = t.message;
        later(() => out.trap(t));
      },
    };
    return execute(session, request, sink);
  };
}

function snapshot(site: string): RouterSnapshot {
  const r = routers.get(site)!;
  const s = r.state;
  const one = (menu: string) => s.items(menu)[0]?.values ?? {};
  return {
    site,
    version: r.version,
    runningVersion: one('system/package')['version'] ?? r.version,
    bootedAt: s.bootedAt,
    identity: one('system/identity')['name'] ?? '',
    dns: one('ip/dns')['servers'] ?? '',
    addressList: s.items('ip/firewall/address-list').map((a) => `${a.values['list']}=${a.values['address']}`),
    users: s.items('user').map((u) => u.values['name'] ?? ''),
  };
}

async function handle(msg: RoutersRequest): Promise<void> {
  switch (msg.type) {
    case 'start': {
      const out: { site: string; port: number }[] = [];
      for (const spec of msg.routers) {
        const r = await startRouter({
          port: spec.port ?? 0,
          identity: spec.site,
          version: spec.version,
          latestVersion: spec.latestVersion,
          users: [spec.user],
          rebootDelayMs: spec.rebootDelayMs,
        });
        routers.set(spec.site, r);
        instrument(spec.site, r);
        out.push({ site: spec.site, port: r.port });
      }
      send({ type: 'reply', id: msg.id, body: out });
      return;
    }
    case 'effects': {
      send({ type: 'reply', id: msg.id, body: effects.filter((e) => e.seq > msg.since) });
      return;
    }
    case 'snapshot': {
      send({ type: 'reply', id: msg.id, body: [...routers.keys()].map(snapshot) });
      return;
    }
    case 'fault': {
      const r = routers.get(msg.site);
      if (r) {
        const f = msg.fault;
        if (f.kind === 'reboot') void r.reboot().catch(() => undefined);
        else if (f.kind === 'latency') r.faults.latencyMs = f.ms;
        else if (f.kind === 'drop') r.faults.dropConnections = true;
        else if (f.kind === 'silent') r.faults.silent = true;
        else if (f.kind === 'heal') {
          r.faults.latencyMs = 0;
          r.faults.dropConnections = false;
          r.faults.silent = false;
        }
      }
      send({ type: 'reply', id: msg.id, body: null });
      return;
    }
    case 'arm': {
      const list = armed.get(msg.site) ?? [];
      list.push({ id: msg.trigger, re: new RegExp(msg.match) });
      armed.set(msg.site, list);
      send({ type: 'reply', id: msg.id, body: null });
      return;
    }
    case 'disarm': {
      armed.clear();
      send({ type: 'reply', id: msg.id, body: null });
      return;
    }
    case 'ack': {
      const release = acks.get(msg.trigger);
      acks.delete(msg.trigger);
      release?.();
      return;
    }
  }
}

process.on('message', (msg: RoutersRequest) => {
  handle(msg).catch((err: unknown) => {
    if ('id' in msg) send({ type: 'reply', id: msg.id, body: null, error: String(err) });
  });
});
process.on('disconnect', () => process.exit(0));
