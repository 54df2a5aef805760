/**
 * Lockout prediction (issue 18, docs/adr/0085-commit-confirm.md): before a change is written,
 * does it obviously cut Backplane's way into the router? The way in is the site's ovpn-client
 * (an interface named after the site, with a PPP profile of the same name), the gateway's
 * tunnel address as the source, the API service on its port, and Backplane's router users.
 *
 * "Obviously" is deliberate: a firewall rule is a risk when every matcher it has is one that
 * management traffic satisfies (an address list or interface list, whose members the rule does
 * not show, makes it not obvious). The router-side revert (commit-confirm) catches what this
 * cannot see; this refuses what needs no router to recognise.
 *
 * Pure: the worker passes the management facts it read from the router (and, for `set` or
 * `enable` of an existing firewall rule, that rule as the router has it).
 */
import type { DesiredState } from './names';

/** How Backplane reaches this router. */
export interface ManagementPath {
  /** The site id: the ovpn-client (tunnel interface) and its PPP profile carry this name. */
  readonly siteId: string;
  /** The gateway's address on the tunnel (the source of every management connection). */
  readonly gatewayAddress?: string;
  /** The API service port (8728 unless the router says otherwise). */
  readonly apiPort: number;
  /** Backplane's router users (bp-api, bp-admin, or the login the site's credentials name). */
  readonly users: readonly string[];
  /** Internal ids (`*N`) of management objects → their names, so a change by id is recognised. */
  readonly ids?: Readonly<Record<string, string>>;
}

/** One change as the job would send it. */
export type ProposedChange =
  | {
      readonly kind: 'command';
      readonly command: string;
      readonly attributes: Readonly<Record<string, string>>;
      /** For `set`/`enable` of an existing item: the item as the router has it now. */
      readonly current?: Readonly<Record<string, string>>;
    }
  | { readonly kind: 'desired'; readonly state: DesiredState };

export interface LockoutRisk {
  /** Machine-readable: which rule of the prediction fired. */
  readonly rule:
    | 'firewall_drops_management'
    | 'tunnel_interface_disabled'
    | 'tunnel_profile_changed'
    | 'api_service_cut'
    | 'management_user_changed';
  readonly message: string;
}

const DROP_ACTIONS = new Set(['drop', 'reject', 'tarpit']);
/** Attributes of a firewall rule that do not restrict which packets it matches. */
const NEUTRAL = new Set([
  'chain',
  'action',
  'comment',
  'log',
  'log-prefix',
  'disabled',
  'place-before',
  'reject-with',
  '.id',
  'numbers',
  'copy-from',
  'dynamic',
  'invalid',
  'bytes',
  'packets',
]);

const verbOf = (command: string) => command.slice(command.lastIndexOf('/') + 1);
const menuOf = (command: string) => command.slice(0, command.lastIndexOf('/'));
const yes = (v: string | undefined) => v === 'yes' || v === 'true';

function ipv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s.trim());
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return parts.reduce((a, p) => a * 256 + p, 0);
}

/** Whether an address, prefix (a.b.c.d/n) or range (a-b) contains `addr`; undefined when unreadable. */
export function addressContains(spec: string, addr: string): boolean | undefined {
  const a = ipv4(addr);
  if (a === undefined) return undefined;
  const s = spec.trim();
  if (s.includes('-')) {
    const [lo, hi] = s.split('-').map((x) => ipv4(x));
    if (lo === undefined || hi === undefined) return undefined;
    return a >= lo && a <= hi;
  }
  const [base, bits] = s.split('/');
  const b = ipv4(base ?? '');
  const n = bits === undefined ? 32 : Number(bits);
  if (b === undefined || !Number.isInteger(n) || n < 0 || n > 32) return undefined;
  const size = 2 ** (32 - n);
  return Math.floor(a / size) === Math.floor(b / size);
}

/** Whether a port list (`22,8728`, `8000-9000`) contains `port`. */
function portsContain(spec: string, port: number): boolean | undefined {
  let readable = true;
  const hit = spec.split(',').some((part) => {
    const [lo, hi] = part.trim().split('-').map(Number);
    if (lo === undefined || !Number.isInteger(lo) || (hi !== undefined && !Number.isInteger(hi))) {
      readable = false;
      return false;
    }
    return port >= lo && port <= (hi ?? lo);
  });
  return hit ? true : readable ? false : undefined;
}

/** `!x` negates a matcher. */
function negatable(v: string, test: (x: string) => boolean | undefined): boolean | undefined {
  const neg = v.startsWith('!');
  const r = test(neg ? v.slice(1) : v);
  return r === undefined ? undefined : neg ? !r : r;
}

/**
 * Whether a firewall rule (filter or raw, with all its properties) obviously drops the
 * management traffic: a drop-like action in the chain management packets traverse, enabled,
 * and every matcher satisfied by a management packet (from the gateway, in through the
 * tunnel, TCP to the API port, new or established).
 */
export function ruleDropsManagement(
  menu: 'filter' | 'raw',
  rule: Readonly<Record<string, string>>,
  path: ManagementPath,
): boolean {
  if (!DROP_ACTIONS.has(rule['action'] ?? (menu === 'filter' ? 'accept' : ''))) return false;
  if (yes(rule['disabled'])) return false;
  if (rule['chain'] !== (menu === 'filter' ? 'input' : 'prerouting')) return false;
  for (const [k, v] of Object.entries(rule)) {
    if (NEUTRAL.has(k) || v === '') continue;
    let ok: boolean | undefined;
    switch (k) {
      case 'in-interface':
        ok = negatable(v, (x) => x === path.siteId);
        break;
      case 'src-address':
        ok = path.gatewayAddress ? negatable(v, (x) => addressContains(x, path.gatewayAddress!)) : undefined;
        break;
      case 'protocol':
        ok = negatable(v, (x) => x === 'tcp' || x === '6');
        break;
      case 'dst-port':
      case 'port':
        ok = negatable(v, (x) => portsContain(x, path.apiPort));
        break;
      case 'connection-state':
        ok = negatable(v, (x) => x.split(',').some((s) => s === 'new' || s === 'established'));
        break;
      default:
        // A matcher this cannot evaluate (lists, marks, MAC...): not obvious.
        ok = undefined;
    }
    if (ok !== true) return false;
  }
  return true;
}

/** The names a `numbers=`/`.id=` value designates (ids of management objects resolved). */
function targets(attrs: Readonly<Record<string, string>>, path: ManagementPath): string[] {
  const v = attrs['numbers'] ?? attrs['.id'] ?? '';
  return v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)
    .map((x) => path.ids?.[x] ?? x);
}

function commandRisks(c: Extract<ProposedChange, { kind: 'command' }>, path: ManagementPath): LockoutRisk[] {
  const risks: LockoutRisk[] = [];
  const verb = verbOf(c.command);
  const menu = menuOf(c.command);
  const a = c.attributes;
  const hits = targets(a, path);
  const writes = !['print', 'getall', 'monitor', 'export', 'find'].includes(verb);
  if (!writes) return risks;

  const fw = /^\/ip\/firewall\/(filter|raw)$/.exec(menu);
  if (fw && ['add', 'set', 'enable'].includes(verb)) {
    const rule: Record<string, string> = { ...(c.current ?? {}) };
    if (verb === 'enable') rule['disabled'] = 'no';
    else for (const [k, v] of Object.entries(a)) rule[k] = v;
    if (verb === 'add' || c.current) {
      if (ruleDropsManagement(fw[1] as 'filter' | 'raw', rule, path)) {
        risks.push({
          rule: 'firewall_drops_management',
          message: `${c.command}: the rule (${rule['chain']} ${rule['action']}) would drop Backplane's management traffic (tunnel ${path.siteId}${path.gatewayAddress ? `, from ${path.gatewayAddress}` : ''}, API port ${path.apiPort})`,
        });
      }
    }
  }

  // Any write to the tunnel's own objects but its comment (or enabling it) may cut it.
  const changed = Object.entries(a).filter(
    ([k, v]) => !['numbers', '.id', 'comment'].includes(k) && !(k === 'disabled' && !yes(v)),
  );
  const cuts = verb === 'remove' || verb === 'disable' || (verb === 'set' && changed.length > 0);
  const tunnelMenu = menu === '/interface/ovpn-client' || menu === '/interface';
  if (tunnelMenu && cuts && hits.includes(path.siteId)) {
    risks.push({
      rule: 'tunnel_interface_disabled',
      message: `${c.command} would ${verb === 'set' ? 'change' : verb} the management tunnel ${path.siteId}`,
    });
  }
  if (menu === '/ppp/profile' && cuts && hits.includes(path.siteId)) {
    risks.push({
      rule: 'tunnel_profile_changed',
      message: `${c.command} would ${verb} the management tunnel's PPP profile ${path.siteId}`,
    });
  }
  if (menu === '/ip/service' && hits.includes('api')) {
    let why: string | undefined;
    if (verb === 'remove' || verb === 'disable') why = `${verb} the API service`;
    else if (verb === 'set') {
      if (yes(a['disabled'])) why = 'disable the API service';
      else if (a['port'] !== undefined && Number(a['port']) !== path.apiPort)
        why = `move the API service to port ${a['port']}`;
      else if (a['address'] !== undefined && a['address'] !== '' && path.gatewayAddress) {
        const allowed = a['address'].split(',').some((p) => addressContains(p, path.gatewayAddress!) !== false);
        if (!allowed)
          why = `restrict the API service to ${a['address']}, which excludes the gateway ${path.gatewayAddress}`;
      }
    }
    if (why) risks.push({ rule: 'api_service_cut', message: `${c.command} would ${why}` });
  }
  if (menu === '/user' && (verb === 'remove' || verb === 'disable' || verb === 'set')) {
    const user = hits.find((h) => path.users.includes(h));
    if (user && (verb !== 'set' || changed.length > 0)) {
      risks.push({
        rule: 'management_user_changed',
        message: `${c.command} would ${verb} Backplane's router user ${user}`,
      });
    }
  }
  return risks;
}

function desiredRisks(d: DesiredState, path: ManagementPath): LockoutRisk[] {
  if (d.menu === 'user' && path.users.includes(d.name)) {
    return [
      {
        rule: 'management_user_changed',
        message: `apply-config would set Backplane's router user ${d.name} (group ${d.group}${d.disabled ? ', disabled' : ''}${d.password ? ', new password' : ''})`,
      },
    ];
  }
  return [];
}

/** The lockout risks of one change (empty: nothing obvious). */
export function predictLockout(change: ProposedChange, path: ManagementPath): LockoutRisk[] {
  return change.kind === 'command' ? commandRisks(change, path) : desiredRisks(change.state, path);
}

/** Menus whose writes `commandRisks` judges (any other write carries no obvious lockout risk). */
const MANAGEMENT_MENUS: readonly string[] = [
  '/ip/firewall/filter',
  '/ip/firewall/raw',
  '/interface',
  '/interface/ovpn-client',
  '/ppp/profile',
  '/ip/service',
  '/user',
];

/**
 * Whether judging these changes needs the router's management path at all: false when no
 * change writes a menu the rules look at, so that the prediction is empty whatever the path
 * is (property-tested) and the reads of the path can be skipped (issue 19).
 */
export function touchesManagement(changes: readonly ProposedChange[]): boolean {
  return changes.some((c) =>
    c.kind === 'command' ? MANAGEMENT_MENUS.includes(menuOf(c.command)) : c.state.menu === 'user',
  );
}

/** The risks of a whole job's changes, in order. */
export function predictLockouts(changes: readonly ProposedChange[], path: ManagementPath): LockoutRisk[] {
  return changes.flatMap((c) => predictLockout(c, path));
}
