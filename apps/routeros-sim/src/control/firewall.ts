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
 * Enforced rule shapes (everything else makes the rule not match, i.e. it is skipped):
 * - chain=input (and jump-target chains reached from it; `return` goes back), disabled=no;
 * - actions accept, drop, reject, tarpit, jump, return; log, passthrough and
 *   add-src/dst-to-address-list fall through;
 * - matchers in-interface (`!` too), in-interface-list=all, src-address / dst-address (address,
 *   prefix or range, `!`), protocol=tcp (or 6, `!`), src-port / dst-port (lists and ranges,
 *   `!`), connection-state (list, `!`), src-address-list / dst-address-list (`!`).
 * Any other matcher on a rule (out-interface, interface lists other than all, layer7, ...)
 * is not evaluated and the rule never matches.
 */
import type { RouterState } from '../model/state';
import { parseIp, parsePrefix, networkOf } from '../model/values';

export type Verdict = 'accept' | 'drop' | 'reject';

/** A TCP connection to one of the router's services, as the firewall sees it. */
export interface Flow {
  readonly inInterface: string;
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
      hit = value === flow.inInterface;
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
    case 'protocol':
      hit = value === 'tcp' || value === '6';
      break;
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
  const r = run('input', 0);
  return r === 'drop' || r === 'reject' ? r : 'accept';
}
