import { createHash } from 'node:crypto';
import { isSecretAttribute, type DesiredState, type RouterWrite } from '@backplane/jobs';
import { cmd, find, id } from '@backplane/routeros';

/**
 * What apply-config would change on one router, computed from what the router holds now:
 * shared by apply (which then writes) and plan (which only records it). Pure except for the
 * reads (`RouterReader`), so a plan and the apply that follows it compute the same writes
 * from the same state (docs/adr/0088-plans.md).
 */

type Row = Record<string, string>;

/** Where the state is read from: a job context (`print`), or a recording wrapper of one. */
export interface RouterReader {
  print(menu: string): Promise<Row[]>;
}

const list = (v: string | undefined) => (v ?? '').split(',').filter(Boolean);
const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().join(',') === [...b].sort().join(',');
const bool = (v: string | undefined) => v === 'true' || v === 'yes';
const yesNo = (b: boolean) => (b ? 'yes' : 'no');
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** A change that cannot be applied to this router as asked (found before anything is written). */
export class ChangeRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChangeRejectedError';
  }
}

/**
 * What one desired state needs on this router: the writes, how to undo them (`undo[i]` takes
 * back `writes[i]`), what they mean.
 */
export interface ChangePlan {
  readonly writes: readonly RouterWrite[];
  readonly undo: readonly RouterWrite[];
  readonly summary: readonly string[];
}

const write = (command: string, attributes: Row, find?: RouterWrite['find']): RouterWrite => ({
  command,
  attributes,
  ...(find ? { find } : {}),
});

/**
 * Reads the menu and plans find-then-set: only what differs is written. Throws
 * ChangeRejectedError when the router cannot hold the desired state, and the router's own
 * error when it lacks the menu, so a check of every change before the first write finds both.
 */
export async function planDesired(ctx: RouterReader, d: DesiredState, v6: boolean): Promise<ChangePlan> {
  switch (d.menu) {
    case 'dns': {
      const [cur] = await ctx.print('/ip/dns');
      if (sameSet(list(cur?.['servers']), d.servers)) return { writes: [], undo: [], summary: [] };
      return {
        writes: [write('/ip/dns/set', { servers: d.servers.join(',') })],
        undo: [write('/ip/dns/set', { servers: cur?.['servers'] ?? '' })],
        summary: [`dns servers ${d.servers.join(',')}`],
      };
    }
    case 'identity': {
      const [cur] = await ctx.print('/system/identity');
      if (cur?.['name'] === d.name) return { writes: [], undo: [], summary: [] };
      return {
        writes: [write('/system/identity/set', { name: d.name })],
        undo: [write('/system/identity/set', { name: cur?.['name'] ?? 'MikroTik' })],
        summary: ['identity'],
      };
    }
    case 'ntp': {
      const [cur] = await ctx.print('/system/ntp/client');
      // RouterOS 6: two address slots (primary-ntp, secondary-ntp) and host names in
      // server-dns-names; RouterOS 7: one `servers` list of addresses and names.
      let want: Row;
      if (v6) {
        const ips = d.servers.filter((s) => IPV4.test(s));
        const names = d.servers.filter((s) => !IPV4.test(s));
        if (ips.length > 2) {
          throw new ChangeRejectedError(
            `ntp: RouterOS 6 holds at most two NTP server addresses (primary-ntp, secondary-ntp), ${ips.length} given`,
          );
        }
        want = {
          enabled: yesNo(d.enabled),
          'primary-ntp': ips[0] ?? '0.0.0.0',
          'secondary-ntp': ips[1] ?? '0.0.0.0',
          'server-dns-names': names.join(','),
        };
      } else {
        want = { enabled: yesNo(d.enabled), servers: d.servers.join(',') };
      }
      const differs =
        bool(cur?.['enabled']) !== d.enabled ||
        (v6
          ? (cur?.['primary-ntp'] ?? '0.0.0.0') !== want['primary-ntp'] ||
            (cur?.['secondary-ntp'] ?? '0.0.0.0') !== want['secondary-ntp'] ||
            !sameSet(list(cur?.['server-dns-names']), list(want['server-dns-names']))
          : !sameSet(list(cur?.['servers']), d.servers));
      if (!differs) return { writes: [], undo: [], summary: [] };
      const before: Row = Object.fromEntries(
        Object.keys(want).map((k) => [k, k === 'enabled' ? yesNo(bool(cur?.[k])) : (cur?.[k] ?? '')]),
      );
      return {
        writes: [write('/system/ntp/client/set', want)],
        undo: [write('/system/ntp/client/set', before)],
        summary: ['ntp client'],
      };
    }
    case 'address-list': {
      const menu = '/ip/firewall/address-list';
      const rows = (await ctx.print(menu)).filter((r) => r['list'] === d.list);
      const have = new Set(rows.map((r) => r['address']));
      const writes: RouterWrite[] = [];
      const undo: RouterWrite[] = [];
      const summary: string[] = [];
      for (const a of d.addresses) {
        if (have.has(a)) continue;
        writes.push(write(`${menu}/add`, { list: d.list, address: a }));
        undo.push(write(`${menu}/remove`, {}, { menu, match: { list: d.list, address: a } }));
        summary.push(`+${d.list} ${a}`);
      }
      if (d.exclusive) {
        const want = new Set(d.addresses);
        for (const r of rows) {
          if (want.has(r['address'] ?? '') || !r['.id'] || bool(r['dynamic'])) continue;
          writes.push(write(`${menu}/remove`, { '.id': r['.id'] }));
          undo.push(
            write(`${menu}/add`, {
              list: d.list,
              address: r['address'] ?? '',
              ...(r['comment'] ? { comment: r['comment'] } : {}),
              ...(bool(r['disabled']) ? { disabled: 'yes' } : {}),
            }),
          );
          summary.push(`-${d.list} ${r['address']}`);
        }
      }
      return { writes, undo, summary };
    }
    case 'user': {
      const cur = (await ctx.print('/user')).find((u) => u['name'] === d.name);
      const find = { menu: '/user', match: { name: d.name } };
      if (!cur) {
        return {
          writes: [
            write('/user/add', {
              name: d.name,
              group: d.group,
              disabled: yesNo(d.disabled),
              ...(d.password ? { password: d.password } : {}),
            }),
          ],
          undo: [write('/user/remove', {}, find)],
          summary: [`user ${d.name} added`],
        };
      }
      const set: Row = {};
      const back: Row = {};
      if (cur['group'] !== d.group) {
        set['group'] = d.group;
        back['group'] = cur['group'] ?? '';
      }
      if (bool(cur['disabled']) !== d.disabled) {
        set['disabled'] = yesNo(d.disabled);
        back['disabled'] = yesNo(bool(cur['disabled']));
      }
      if (Object.keys(set).length === 0 || !cur['.id']) return { writes: [], undo: [], summary: [] };
      return {
        writes: [write('/user/set', { '.id': cur['.id'], ...set })],
        undo: [write('/user/set', back, find)],
        summary: [`user ${d.name} ${Object.keys(set).join(',')}`],
      };
    }
  }
}

// ------------------------------------------------------------------ the structured diff

/** One property of one item that apply would change: `before` null (added) or `after` null (removed). */
export interface PropertyChange {
  readonly menu: string;
  /** The item: `.id`, its name or address; '' for a menu with one item (`/ip/dns`). */
  readonly item: string;
  readonly property: string;
  readonly before: string | null;
  readonly after: string | null;
}

/** Never shown: a password or another secret attribute (the command policy's list). */
const shown = (k: string, v: string | undefined): string | null =>
  v === undefined ? null : isSecretAttribute(k) ? '***' : v;

function split(command: string): { menu: string; verb: string } {
  const i = command.lastIndexOf('/');
  return { menu: command.slice(0, i), verb: command.slice(i + 1) };
}

function itemOf(w: RouterWrite, undo: RouterWrite | undefined): string {
  const a = w.attributes;
  // A `set` without an item id is of a menu with one item (`/ip/dns`, `/system/identity`).
  if (w.command.endsWith('/set') && !a['.id'] && !w.find) return '';
  return (
    w.find?.match['name'] ??
    undo?.find?.match['name'] ??
    a['name'] ??
    a['address'] ??
    undo?.attributes['address'] ??
    a['.id'] ??
    ''
  );
}

/** The property changes of one change plan (before from its undo, after from its writes). */
export function propertyChanges(plan: ChangePlan): PropertyChange[] {
  const out: PropertyChange[] = [];
  plan.writes.forEach((w, i) => {
    const undo = plan.undo[i];
    const { menu, verb } = split(w.command);
    const item = itemOf(w, undo);
    if (verb === 'set') {
      for (const [k, v] of Object.entries(w.attributes)) {
        if (k === '.id') continue;
        out.push({ menu, item, property: k, before: shown(k, undo?.attributes[k]), after: shown(k, v) });
      }
    } else if (verb === 'add') {
      for (const [k, v] of Object.entries(w.attributes))
        out.push({ menu, item, property: k, before: null, after: shown(k, v) });
    } else if (verb === 'remove') {
      for (const [k, v] of Object.entries(undo?.attributes ?? {})) {
        out.push({ menu, item, property: k, before: shown(k, v), after: null });
      }
    }
  });
  return out;
}

/**
 * The RouterOS command of one write, built with the one escaper (`libs/routeros` script
 * builder): `/ip dns set servers="9.9.9.9"`. `redact`: passwords shown as `***`.
 */
export function renderWrite(w: RouterWrite, redact: boolean): string {
  const { menu, verb } = split(w.command);
  const args: Record<string, string> = {};
  for (const [k, v] of Object.entries(w.attributes)) {
    if (k === '.id') continue;
    args[k] = redact && isSecretAttribute(k) ? '***' : v;
  }
  const target = w.attributes['.id'] ? id(w.attributes['.id']) : w.find ? find(w.find.match) : undefined;
  return cmd(menu, verb, args, target).text;
}

// ------------------------------------------------------------------ what the plan read

/** Properties that change on their own (counters, clocks): left out of the fingerprint. */
const VOLATILE = new Set(['cache-used', 'last-logged-in', 'creation-time', 'timeout', 'last-update', 'status']);

function canonicalRows(rows: readonly Row[]): string {
  const clean = rows.map((r) =>
    Object.keys(r)
      .filter((k) => !VOLATILE.has(k))
      .sort()
      .map((k) => `${k}=${r[k]}`)
      .join('\u0001'),
  );
  return clean.sort().join('\u0002');
}

/**
 * A reader that remembers every menu it read (each read once): its fingerprint names the
 * state a plan was computed from. Apply recomputes it; a different one means the router
 * changed in between (`plan_stale`).
 */
export class RecordingReader implements RouterReader {
  private readonly seen = new Map<string, Row[]>();

  constructor(private readonly inner: RouterReader) {}

  async print(menu: string): Promise<Row[]> {
    const hit = this.seen.get(menu);
    if (hit) return hit.map((r) => ({ ...r }));
    const rows = await this.inner.print(menu);
    this.seen.set(menu, rows);
    return rows.map((r) => ({ ...r }));
  }

  /** The menus read, sorted. */
  menus(): string[] {
    return [...this.seen.keys()].sort();
  }

  /** sha256 over the menus read and their rows (without volatile properties). */
  fingerprint(): string {
    const h = createHash('sha256');
    for (const m of this.menus()) h.update(`${m}\u0000${canonicalRows(this.seen.get(m) ?? [])}\u0000`);
    return h.digest('hex');
  }

  /** One fingerprint per menu: which menus changed, when the whole one differs. */
  perMenu(): Record<string, string> {
    return Object.fromEntries(
      this.menus().map((m) => [
        m,
        createHash('sha256')
          .update(canonicalRows(this.seen.get(m) ?? []))
          .digest('hex'),
      ]),
    );
  }
}

/**
 * sha256 of the writes as commands, secrets as `***` (the digest is stored in the plan's
 * result: a hash of a password would be guessable offline). Secrets come from the plan's own
 * payload, which the apply copies, so they cannot differ between plan and apply.
 */
export function writesDigest(writes: readonly RouterWrite[]): string {
  return createHash('sha256')
    .update(JSON.stringify(writes.map((w) => [renderWrite(w, true), w.find ?? null])))
    .digest('hex');
}

// ------------------------------------------------------------------ run-command previews

/** What one run-command would change, as far as it can be told from the menu it writes. */
export interface CommandPreview {
  readonly writes: readonly RouterWrite[];
  readonly changes: readonly PropertyChange[];
  /** Why the preview is partial or empty (a read, an action whose effect cannot be read). */
  readonly note: string | null;
}

const IGNORED = new Set(['.id', 'numbers', 'dynamic', 'default', 'invalid', 'running', 'builtin']);

/**
 * A run-command preview: `add` lists the new item's properties, `set` the properties that
 * differ (before from the item read now), `enable`/`disable` its `disabled`, `remove` the
 * item's properties; reads change nothing; other verbs are sent as given, said so. The item
 * of `set`/`remove`/`enable`/`disable` is `.id` or `numbers` (an id or a name), or the one
 * item of a menu that has one.
 */
export async function planCommand(
  reader: RouterReader,
  command: string,
  attributes: Readonly<Record<string, string>>,
  readVerbs: readonly string[],
): Promise<CommandPreview> {
  const { menu, verb } = split(command);
  const w = write(command, { ...attributes });
  if (readVerbs.includes(verb)) return { writes: [], changes: [], note: `${verb} reads only: nothing changes` };
  const props = Object.entries(attributes).filter(([k]) => !IGNORED.has(k));
  if (verb === 'add') {
    const item = attributes['name'] ?? attributes['address'] ?? '(new)';
    return {
      writes: [w],
      changes: props.map(([k, v]) => ({ menu, item, property: k, before: null, after: shown(k, v) })),
      note: null,
    };
  }
  if (!['set', 'remove', 'enable', 'disable'].includes(verb)) {
    return { writes: [w], changes: [], note: `the effect of ${verb} cannot be previewed: it is sent as given` };
  }
  const rows = await reader.print(menu);
  const ref = attributes['.id'] ?? attributes['numbers'];
  const item = ref
    ? rows.find((r) => r['.id'] === ref || r['name'] === ref)
    : rows.length === 1 && !rows[0]!['.id']
      ? rows[0]
      : undefined;
  if (!item) {
    throw new ChangeRejectedError(
      ref ? `${menu}: no item ${ref}` : `${menu}: say which item (.id or numbers): the menu has ${rows.length} items`,
    );
  }
  const label = ref ? (item['name'] ?? ref) : '';
  if (verb === 'remove') {
    const before = Object.entries(item).filter(([k]) => !IGNORED.has(k) && !k.startsWith('.'));
    return {
      writes: [w],
      changes: before.map(([k, v]) => ({ menu, item: label, property: k, before: shown(k, v), after: null })),
      note: null,
    };
  }
  const want: [string, string][] = verb === 'set' ? props : [['disabled', verb === 'disable' ? 'true' : 'false']];
  const norm = (v: string | undefined) => (v === 'yes' ? 'true' : v === 'no' ? 'false' : v);
  const differing = want.filter(([k, v]) => norm(item[k]) !== norm(v));
  if (differing.length === 0) return { writes: [], changes: [], note: 'the item already holds these values' };
  return {
    writes: [w],
    changes: differing.map(([k, v]) => ({
      menu,
      item: label,
      property: k,
      before: shown(k, item[k]),
      after: shown(k, v),
    })),
    note: null,
  };
}
