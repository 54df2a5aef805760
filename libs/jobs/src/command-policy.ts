/**
 * Who may send which RouterOS command, and which attribute values are secrets (issue 14
 * finding 2, docs/adr/0050-command-policy.md). One place for the api (when a job is
 * requested) and the worker (again, before the command is sent).
 *
 * - Operators get a read-only allow-list: the verbs in {@link READ_VERBS}, `export` without
 *   `show-sensitive` or `file`, and nothing under {@link ADMIN_ONLY_MENUS}, not even a print.
 * - Every other command (a write) needs admin.
 * - Nobody, admins included, may send {@link REFUSED_COMMANDS} or write to Backplane's own
 *   management objects (names starting `bp-`, or the site's UUID: its ovpn-client and PPP
 *   profile), nor write by internal id (`*N`) in a menu that holds management objects.
 */

export type PolicyRole = 'owner' | 'admin' | 'operator' | 'viewer';

const RANK: Record<PolicyRole, number> = { viewer: 0, operator: 1, admin: 2, owner: 3 };
const isAdmin = (role: PolicyRole) => RANK[role] >= RANK.admin;

/** Attribute names whose values are secrets (compared lower-case). */
export const SECRET_ATTRIBUTES: readonly string[] = [
  'password',
  'secret',
  'private-key',
  'passphrase',
  'auth-key',
  'pre-shared-key',
  'key',
  'wpa-pre-shared-key',
  'wpa2-pre-shared-key',
  'wpa3-pre-shared-key',
  'sae-password',
  'psk',
  'ipsec-secret',
  'authentication-key',
  'encryption-password',
  'authentication-password',
  'radius-secret',
  'mschapv2-password',
  'token',
  'old-password',
  'new-password',
  'otp-secret',
];
const SECRET_SET = new Set(SECRET_ATTRIBUTES);
export const REDACTED = '***';

export function isSecretAttribute(name: string): boolean {
  return SECRET_SET.has(name.toLowerCase());
}

/**
 * Verbs an operator may send (read-only). Not `get`: its answer (`ret`) is not keyed by the
 * attribute's name, so a secret it returns could not be recognised and redacted.
 */
export const READ_VERBS: readonly string[] = [
  'print',
  'getall',
  'monitor',
  'monitor-traffic',
  'ping',
  'traceroute',
  'torch',
  'export',
];

/** Menus only admins touch, reads included (prefix match on the command path). */
export const ADMIN_ONLY_MENUS: readonly string[] = [
  '/user',
  '/certificate',
  '/ppp/secret',
  '/file',
  '/system/script',
  '/system/scheduler',
  '/tool/fetch',
  '/import',
  '/system/reset-configuration',
];

/** Refused for everyone through run-command (they take the router away from its owner). */
export const REFUSED_COMMANDS: readonly string[] = [
  '/system/reset-configuration',
  '/system/license',
  '/system/routerboard/settings',
];

/** Menus holding Backplane's management objects: writes there must name the object. */
const MANAGEMENT_MENUS = [
  '/interface/ovpn-client',
  '/ppp/profile',
  '/user',
  '/user/group',
  '/system/scheduler',
  '/file',
  '/certificate',
];

/** Firewall matchers that may name the tunnel interface (`in-interface=<site id>`). */
const FIREWALL_MATCHERS = new Set(['in-interface', 'out-interface']);

export type CommandDecision = { allowed: true } | { allowed: false; rule: string; message: string };

const under = (command: string, menu: string) => command === menu || command.startsWith(`${menu}/`);

function verbOf(command: string): string {
  return command.slice(command.lastIndexOf('/') + 1);
}

/**
 * Whether `role` may send `command` with `attributes` to the router of site `siteId`.
 * The refusal names its rule (`rule`) and says why (`message`).
 */
export function commandPolicy(
  role: PolicyRole,
  siteId: string,
  command: string,
  attributes: Readonly<Record<string, string>> = {},
): CommandDecision {
  const deny = (rule: string, message: string): CommandDecision => ({ allowed: false, rule, message });
  const refused = REFUSED_COMMANDS.find((c) => under(command, c));
  if (refused) return deny('refused_command', `${refused} is never sent through run-command`);
  const verb = verbOf(command);
  const read = READ_VERBS.includes(verb);
  const values = Object.entries(attributes);
  const isManagementName = (part: string) => {
    const x = part.trim().toLowerCase();
    return x.startsWith('bp-') || (siteId !== '' && x === siteId.toLowerCase());
  };
  if (!read) {
    // A firewall rule that matches on the tunnel interface does not write the tunnel: the
    // lockout prediction (lockout.ts) judges whether it cuts management.
    const firewall = /^\/ip(v6)?\/firewall\//.test(command);
    const mgmt = values.find(
      ([k, v]) => !(firewall && FIREWALL_MATCHERS.has(k)) && v.split(',').some(isManagementName),
    );
    if (mgmt) {
      return deny('management_object', `${command} would change Backplane's management object "${mgmt[1]}"`);
    }
    if (MANAGEMENT_MENUS.some((m) => under(command, m)) && values.some(([, v]) => /(^|,)\s*\*/.test(v))) {
      return deny(
        'management_menu_by_id',
        `${command}: in this menu name the object (numbers=<name>), an internal id (*N) cannot be checked`,
      );
    }
  }
  if (role === 'viewer') return deny('viewer_read_only', 'viewers cannot send router commands');
  if (isAdmin(role)) return { allowed: true };
  const adminMenu = ADMIN_ONLY_MENUS.find((m) => under(command, m));
  if (adminMenu) return deny('admin_only_menu', `${adminMenu} is admin-only (reads included)`);
  if (!read)
    return deny(
      'write_needs_admin',
      `${command} changes the router: admin only (operators may ${READ_VERBS.join(', ')})`,
    );
  if (verb === 'export') {
    const sensitive = Object.keys(attributes).find((k) => k === 'show-sensitive' || k === 'file');
    if (sensitive) return deny('export_needs_admin', `export with ${sensitive} is admin-only`);
  }
  return { allowed: true };
}

/** A desired-state change an operator may not make (router users: admin). */
export function desiredStatePolicy(role: PolicyRole, menus: readonly string[]): CommandDecision {
  if (isAdmin(role)) return { allowed: true };
  if (menus.includes('user')) {
    return { allowed: false, rule: 'admin_only_menu', message: 'changing router users (menu user) is admin-only' };
  }
  return { allowed: true };
}

const TEXT_PATTERNS = SECRET_ATTRIBUTES.map((a) => a.replace(/[-]/g, '\\-')).join('|');
/** `password=x`, `password="x y"` (RouterOS) and `"password":"x"` (JSON text). */
const KV_RE = new RegExp(`(^|[\\s;{,?])(${TEXT_PATTERNS})=("(?:[^"\\\\]|\\\\.)*"|[^\\s;]*)`, 'gi');
const JSON_RE = new RegExp(`("(?:${TEXT_PATTERNS})"\\s*:\\s*)"(?:[^"\\\\]|\\\\.)*"`, 'gi');

/** Secret values inside text (an export, an error message, a step result stored as JSON). */
export function redactSecretText(text: string): string {
  return text.replace(KV_RE, `$1$2=${REDACTED}`).replace(JSON_RE, `$1"${REDACTED}"`);
}

/**
 * A deep copy with every secret attribute's value replaced by `***` (object keys from
 * {@link SECRET_ATTRIBUTES}; strings are scanned with {@link redactSecretText}).
 */
export function redactSecrets<T>(value: T): T {
  return walk(value) as T;
}

function walk(v: unknown): unknown {
  if (typeof v === 'string') return redactSecretText(v);
  if (Array.isArray(v)) return v.map(walk);
  if (v && typeof v === 'object' && !(v instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      out[k] = isSecretAttribute(k) && x !== null && x !== undefined && x !== '' ? REDACTED : walk(x);
    }
    return out;
  }
  return v;
}

/** The policy for a whole job request (run-command and apply-config; other kinds: their role). */
export function jobRequestPolicy(
  role: PolicyRole,
  siteId: string,
  request:
    | { kind: 'run-command'; payload: { command: string; attributes?: Readonly<Record<string, string>> } }
    | { kind: 'apply-config'; payload: { changes: readonly { menu: string }[] } }
    | { kind: string; payload: unknown },
): CommandDecision {
  const p0 = request.payload as { allowLockoutRisk?: unknown } | null | undefined;
  if (p0?.allowLockoutRisk === true && !isAdmin(role)) {
    return {
      allowed: false,
      rule: 'lockout_override_needs_admin',
      message: 'allowLockoutRisk (apply a change predicted to cut management) is admin-only',
    };
  }
  if (request.kind === 'run-command') {
    const p = request.payload as { command: string; attributes?: Readonly<Record<string, string>> };
    return commandPolicy(role, siteId, p.command, p.attributes ?? {});
  }
  // A plan (preview) is held to the rule of what it previews: it would be applied as asked.
  if (request.kind === 'plan') {
    const p = request.payload as {
      command?: string;
      attributes?: Readonly<Record<string, string>>;
      changes?: readonly { menu: string }[];
    };
    if (p.command !== undefined) return commandPolicy(role, siteId, p.command, p.attributes ?? {});
    return desiredStatePolicy(
      role,
      (p.changes ?? []).map((c) => c.menu),
    );
  }
  if (request.kind === 'apply-config') {
    const p = request.payload as { changes: readonly { menu: string }[] };
    return desiredStatePolicy(
      role,
      p.changes.map((c) => c.menu),
    );
  }
  return { allowed: true };
}
