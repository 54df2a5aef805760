/**
 * `/ip firewall filter` applied to the router's own services (API, api-ssl, REST, SSH),
 * so a rule that locks management out really does: the `input` chain is evaluated for a
 * new TCP connection (connection-state=new) and again, for every open connection
 * (connection-state=established), whenever the rules, address lists or interfaces change.
 *
 * Verdicts: `accept` (first accepting rule or no rule), `drop` (the connection is held:
 * nothing is read or written — on a real router the packets vanish; a client times out —
 * and it resumes when a later change accepts it again, like TCP retransmission after the
 * rule is removed), `reject` (TCP reset). `tarpit` counts as drop.
 *
 * The tunnel's own transport is judged too (see tunnelBlocked): an ovpn-client whose packets
 * to or from its `connect-to` address are dropped (input chain, in-interface = the WAN port,
 * src-address = connect-to, src-port = its port; or output chain, out-interface = WAN,
 * dst-address = connect-to, dst-port = port; protocol tcp or udp) is down: its real openvpn
 * is stopped, and connections that arrive through it are dropped.
 *
 * Enforced rule shapes (everything else makes the rule not match, i.e. it is skipped):
 * - chain=input / output (and jump-target chains reached from them; `return` goes back);
 * - actions accept, drop, reject, tarpit, jump, return; log, passthrough and
 *   add-src/dst-to-address-list fall through;
 * - matchers in-interface, out-interface (output chain) (`!` too), in-interface-list=all, src-address / dst-address (address,
 *   prefix or range, `!`), protocol=tcp/udp (or 6/17, `!`), src-port / dst-port (lists and ranges,
 *   `!`), connection-state (list, `!`), src-address-list / dst-address-list (`!`).
 * Any other matcher on a rule (interface lists other than all, layer7, ...)
 * is not evaluated and the rule never matches.
 */
import type { RouterState } from '../model/state';
import { parseIp, parsePrefix, networkOf } from '../model/values';

export type Verdict = 'accept' | 'drop' | 'reject';

/** A TCP connection to one of the router's services, as the firewall sees it. */
export interface Flow {
  /** Where it comes in (input chain); empty for traffic the router sends. */
  readonly inInterface: string;
  /** Where it goes out (output chain). */
  readonly outInterface?: string;
  /** `tcp` (default) or `udp`. */
  readonly protocol?: 'tcp' | 'udp';
  readonly src: string;
  readonly dst: string;
  readonly srcPort: number;
  readonly dstPort: number;
}

const MATCHERS = new Set([
  'src-address',
  'dst-address',
  'protocol',
  'src-port',
  'dst-port',
  'in-interface',
  'out-interface',
  'in-interface-list',
  'out-interface-list',
  'src-address-list',
  'dst-address-list',
  'connection-state',
  'connection-nat-state',
  'connection-mark',
  'packet-mark',
  'routing-mark',
  'layer7-protocol',
  'content',
  'tcp-flags',
  'icmp-options',
  'limit',
  'dst-limit',
  'connection-limit',
  'src-mac-address',
  'port',
  'ipsec-policy',
  'hotspot',
  'time',
  'ttl',
  'dscp',
  'packet-size',
  'nth',
  'random',
  'per-connection-classifier',
  'psd',
  'tls-host',
  'connection-type',
  'connection-bytes',
  'connection-rate',
  'fragment',
  'ingress-priority',
  'priority',
  'src-address-type',
  'dst-address-type',
  'in-bridge-port',
  'out-bridge-port',
  'in-bridge-port-list',
  'out-bridge-port-list',
]);

/** `!x` -> [true, x]. */
function negated(raw: string): [boolean, string] {
  return raw.startsWith('!') ? [true, raw.slice(1)] : [false, raw];
}

/** Address, prefix or `a-b` range. */
function addressMatches(spec: string, addr: string): boolean {
  const a = parseIp(addr.replace(/^::ffff:/, ''));
  if (a === undefined) return false;
  const range = /^([\d.]+)-([\d.]+)$/.exec(spec);
  if (range) {
    const lo = parseIp(range[1]!);
    const hi = parseIp(range[2]!);
    return lo !== undefined && hi !== undefined && a >= lo && a <= hi;
  }
  const p = parsePrefix(spec);
  return p !== undefined && networkOf(a, p[1]) === networkOf(p[0], p[1]);
}

function portMatches(spec: string, port: number): boolean {
  return spec.split(',').some((part) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return false;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    return port >= lo && port <= hi;
  });
}

function inAddressList(state: RouterState, list: string, addr: string): boolean {
  const now = state.now();
  return state
    .items('ip/firewall/address-list')
    .some(
      (e) =>
        e.values['list'] === list &&
        e.values['disabled'] !== 'true' &&
        (e.values['.expires'] === undefined || Number(e.values['.expires']) > now) &&
        addressMatches(e.values['address'] ?? '', addr),
    );
}

/** Whether one matcher holds; undefined when the simulator cannot evaluate it. */
function matcher(
  state: RouterState,
  key: string,
  raw: string,
  flow: Flow,
  connectionState: 'new' | 'established',
): boolean | undefined {
  const [not, value] = negated(raw);
  let hit: boolean | undefined;
  switch (key) {
    case 'in-interface':
      hit = flow.inInterface === '' ? undefined : value === flow.inInterface;
      break;
    case 'out-interface':
      hit = flow.outInterface === undefined ? undefined : value === flow.outInterface;
      break;
    case 'in-interface-list':
      hit = value === 'all' ? true : value === 'none' ? false : undefined;
      break;
    case 'src-address':
      hit = addressMatches(value, flow.src);
      break;
    case 'dst-address':
      hit = addressMatches(value, flow.dst);
      break;
    case 'protocol': {
      const proto = flow.protocol ?? 'tcp';
      hit = value === proto || value === (proto === 'tcp' ? '6' : '17');
      break;
    }
    case 'src-port':
      hit = portMatches(value, flow.srcPort);
      break;
    case 'dst-port':
      hit = portMatches(value, flow.dstPort);
      break;
    case 'connection-state':
      hit = value.split(',').includes(connectionState);
      break;
    case 'src-address-list':
      hit = inAddressList(state, value, flow.src);
      break;
    case 'dst-address-list':
      hit = inAddressList(state, value, flow.dst);
      break;
    default:
      return undefined;
  }
  return not ? !hit : hit;
}

/** The input chain's verdict for a connection to the router itself. */
export function inputVerdict(state: RouterState, flow: Flow, connectionState: 'new' | 'established'): Verdict {
  return chainVerdict(state, 'input', flow, connectionState);
}

/** A built-in chain's verdict (`input` for traffic to the router, `output` for its own). */
export function chainVerdict(
  state: RouterState,
  chain: 'input' | 'output',
  flow: Flow,
  connectionState: 'new' | 'established',
): Verdict {
  const rules = state.items('ip/firewall/filter').filter((r) => r.values['disabled'] !== 'true');
  const run = (chain: string, depth: number): Verdict | 'return' | undefined => {
    if (depth > 16) return undefined;
    for (const rule of rules) {
      const v = rule.values;
      if (v['chain'] !== chain) continue;
      let matches = true;
      for (const [k, raw] of Object.entries(v)) {
        if (!MATCHERS.has(k) || raw === '') continue;
        if (matcher(state, k, raw, flow, connectionState) !== true) {
          matches = false;
          break;
        }
      }
      if (!matches) continue;
      switch (v['action'] ?? 'accept') {
        case 'accept':
          return 'accept';
        case 'drop':
        case 'tarpit':
          return 'drop';
        case 'reject':
          return 'reject';
        case 'return':
          return 'return';
        case 'jump': {
          const target = v['jump-target'];
          if (!target || target === chain) break;
          const r = run(target, depth + 1);
          if (r !== undefined && r !== 'return') return r;
          break;
        }
        default:
          break;
      }
    }
    return undefined;
  };
  const r = run(chain, 0);
  return r === 'drop' || r === 'reject' ? r : 'accept';
}

/** The port the WAN traffic leaves by: the interface of the default route's gateway, else ether1. */
export function wanInterface(state: RouterState): string {
  const route = state
    .items('ip/route')
    .find((r) => r.values['dst-address'] === '0.0.0.0/0' && r.values['disabled'] !== 'true');
  const gw = parseIp(route?.values['gateway'] ?? '');
  if (gw !== undefined) {
    for (const a of state.items('ip/address')) {
      const p = parsePrefix(a.values['address'] ?? '');
      if (p && networkOf(gw, p[1]) === networkOf(p[0], p[1])) return a.values['interface'] ?? 'ether1';
    }
  }
  return 'ether1';
}

/**
 * Whether the firewall drops an ovpn-client's own transport (to/from its connect-to
 * address and port). Only an address (not a host name) in connect-to can match address rules.
 */
export function tunnelBlocked(state: RouterState, ovpn: Readonly<Record<string, string>>): boolean {
  const server = ovpn['connect-to'] ?? '';
  const port = Number(ovpn['port'] ?? '1194');
  const protocol = ovpn['protocol'] === 'udp' ? 'udp' : 'tcp';
  const wan = wanInterface(state);
  const local = state.items('ip/address').find((a) => a.values['interface'] === wan)?.values['address'] ?? '';
  const self = local.split('/')[0] ?? '';
  const inbound = chainVerdict(
    state,
    'input',
    { inInterface: wan, protocol, src: server, srcPort: port, dst: self, dstPort: 0 },
    'established',
  );
  const outbound = chainVerdict(
    state,
    'output',
    { inInterface: '', outInterface: wan, protocol, src: self, srcPort: 0, dst: server, dstPort: port },
    'established',
  );
  return inbound !== 'accept' || outbound !== 'accept';
}
