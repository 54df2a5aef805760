import type { DesiredState } from '@backplane/jobs';
import type { JobContext } from '../context';

type Row = Record<string, string>;
const list = (v: string | undefined) => (v ?? '').split(',').filter(Boolean);
const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().join(',') === [...b].sort().join(',');
const bool = (v: string | undefined) => v === 'true' || v === 'yes';

/** Find-then-set: reads the menu, writes only what differs. Returns what it changed. */
export async function applyDesired(ctx: JobContext, d: DesiredState): Promise<string[]> {
  const changed: string[] = [];
  switch (d.menu) {
    case 'dns': {
      const [cur] = await ctx.print('/ip/dns');
      if (!sameSet(list(cur?.['servers']), d.servers)) {
        await ctx.call('/ip/dns/set', { servers: d.servers.join(',') });
        changed.push(`dns servers ${d.servers.join(',')}`);
      }
      return changed;
    }
    case 'identity': {
      const [cur] = await ctx.print('/system/identity');
      if (cur?.['name'] !== d.name) {
        await ctx.call('/system/identity/set', { name: d.name });
        changed.push('identity');
      }
      return changed;
    }
    case 'ntp': {
      const v6 = (await ctx.version()).startsWith('6.');
      const [cur] = await ctx.print('/system/ntp/client');
      const want: Row = v6
        ? {
            enabled: d.enabled ? 'yes' : 'no',
            'primary-ntp': d.servers[0] ?? '0.0.0.0',
            'secondary-ntp': d.servers[1] ?? '0.0.0.0',
          }
        : { enabled: d.enabled ? 'yes' : 'no', servers: d.servers.join(',') };
      const differs =
        bool(cur?.['enabled']) !== d.enabled ||
        (v6
          ? cur?.['primary-ntp'] !== want['primary-ntp'] || cur?.['secondary-ntp'] !== want['secondary-ntp']
          : !sameSet(list(cur?.['servers']), d.servers));
      if (differs) {
        await ctx.call('/system/ntp/client/set', want);
        changed.push('ntp client');
      }
      return changed;
    }
    case 'address-list': {
      const rows = (await ctx.print('/ip/firewall/address-list')).filter((r) => r['list'] === d.list);
      const have = new Set(rows.map((r) => r['address']));
      for (const a of d.addresses) {
        if (!have.has(a)) {
          await ctx.call('/ip/firewall/address-list/add', { list: d.list, address: a });
          changed.push(`+${d.list} ${a}`);
        }
      }
      if (d.exclusive) {
        const want = new Set(d.addresses);
        for (const r of rows) {
          if (!want.has(r['address'] ?? '') && r['.id'] && r['dynamic'] !== 'true') {
            await ctx.call('/ip/firewall/address-list/remove', { '.id': r['.id'] });
            changed.push(`-${d.list} ${r['address']}`);
          }
        }
      }
      return changed;
    }
    case 'user': {
      const cur = (await ctx.print('/user')).find((u) => u['name'] === d.name);
      if (!cur) {
        await ctx.call('/user/add', {
          name: d.name,
          group: d.group,
          disabled: d.disabled ? 'yes' : 'no',
          ...(d.password ? { password: d.password } : {}),
        });
        changed.push(`user ${d.name} added`);
        return changed;
      }
      const set: Row = {};
      if (cur['group'] !== d.group) set['group'] = d.group;
      if (bool(cur['disabled']) !== d.disabled) set['disabled'] = d.disabled ? 'yes' : 'no';
      if (Object.keys(set).length > 0 && cur['.id']) {
        await ctx.call('/user/set', { '.id': cur['.id'], ...set });
        changed.push(`user ${d.name} ${Object.keys(set).join(',')}`);
      }
      return changed;
    }
  }
}

export async function applyConfig(ctx: JobContext<'apply-config'>) {
  const all: string[] = [];
  const n = ctx.payload.changes.length;
  for (const [i, d] of ctx.payload.changes.entries()) {
    const detail = await ctx.step(`apply ${i + 1}/${n} ${d.menu}`, 10 + Math.floor((80 * (i + 1)) / n), async () => {
      const changed = await applyDesired(ctx, d);
      return changed.length ? changed.join('; ') : 'already as desired';
    });
    if (detail && detail !== 'already as desired') all.push(detail);
  }
  return { changed: all };
}
