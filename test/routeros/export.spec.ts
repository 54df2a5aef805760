/**
 * `/export`: the format a router writes, and the round trip that matters: the export of a
 * RANDOM configuration, imported into a fresh router (reset with no-defaults), rebuilds the
 * same configuration.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cmd, find, Script, type ScriptArgs } from '@backplane/routeros';
import { createRouterModel, exportConfig, runScript, type Engine, type RouterState } from '../../apps/routeros-sim/src';
import { EXPORT_SECTIONS } from '../../apps/routeros-sim/src/export/export';

type Model = { state: RouterState; engine: Engine };

/**
 * The configuration as a user sees it: settable properties (defaults filled in), in order.
 * User passwords are not part of it: like a real router, no export carries them.
 */
function config(m: Model): unknown {
  const out: Record<string, unknown> = {};
  for (const path of EXPORT_SECTIONS) {
    const menu = m.state.menu(path);
    const props = m.engine.props(menu).filter((p) => !p.readonly && !p.writeOnly);
    const items = menu.kind === 'single' ? [m.state.single(path)] : m.state.items(menu);
    out[path] = items
      .filter((i) => i.values['dynamic'] !== 'true')
      .map((i) =>
        Object.fromEntries(
          props.map((p) => [
            p.name,
            i.values[p.name] ?? (typeof p.default === 'function' ? p.default(m.state.features) : p.default),
          ]),
        ),
      );
  }
  return out;
}

const nasty = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 24 }),
  fc.string({ unit: 'binary', maxLength: 24 }),
  fc.constantFrom(
    'say "hi"',
    '$(/system reboot)',
    'a\\',
    'line\nbreak\r\n',
    '[/system reboot]',
    '; /user remove admin',
  ),
);
/** Long values (script sources, comments) that export breaks inside the quotes. */
const long = fc
  .array(fc.oneof(nasty, fc.constantFrom(' ', '    ', 'x'.repeat(70), ' \\ ', '"$')), { minLength: 4, maxLength: 20 })
  .map((parts) => parts.join(''));
const octet = fc.integer({ min: 1, max: 254 });
const ipv4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
const ident = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
const port = fc.integer({ min: 1, max: 5 }).map((n) => `ether${n}`);

/** A random configuration change script (built with the script builder). */
/** Versions with different booleans, date formats, properties and cipher names. */
const VERSIONS = ['6.49.10', '7.16', '7.18'];
const CIPHERS: Record<string, string[]> = {
  '6.49.10': ['aes128', 'aes256', 'blowfish128'],
  '7.16': ['aes128-cbc', 'aes256-gcm', 'aes256-cbc'],
  '7.18': ['aes128-cbc', 'aes256-gcm', 'aes256-cbc'],
};

const changes = (version: string) =>
  fc
    .record({
      identity: fc.option(nasty.filter((s) => s !== '')),
      dns: fc.option(fc.array(ipv4, { minLength: 1, maxLength: 3 })),
      ntp: fc.option(
        fc.record({ enabled: fc.boolean(), servers: fc.array(fc.oneof(ipv4, ident), { minLength: 1, maxLength: 2 }) }),
      ),
      ether: fc.option(fc.record({ port, comment: nasty, mtu: fc.integer({ min: 1280, max: 1500 }) })),
      services: fc.uniqueArray(
        fc.record({
          name: fc.constantFrom('telnet', 'ftp', 'www', 'ssh', 'api', 'winbox'),
          disabled: fc.boolean(),
          address: fc.option(ipv4.map((a) => `${a}/32`)),
        }),
        { selector: (s) => s.name, maxLength: 3 },
      ),
      addresses: fc.uniqueArray(
        fc.record({
          address: fc.tuple(ipv4, fc.integer({ min: 8, max: 32 })).map(([a, l]) => `${a}/${l}`),
          iface: port,
          comment: fc.option(nasty),
          disabled: fc.boolean(),
        }),
        { selector: (a) => `${a.address}|${a.iface}`, maxLength: 4 },
      ),
      lists: fc.uniqueArray(
        fc.record({
          list: nasty.filter((s) => s !== ''),
          address: ipv4,
          comment: fc.option(nasty),
          timeout: fc.option(fc.constantFrom('1d', '30m', '1w2d')),
        }),
        { selector: (l) => `${l.list}|${l.address}`, maxLength: 4 },
      ),
      rules: fc.array(
        fc.record({
          chain: fc.oneof(fc.constantFrom('input', 'forward', 'output'), ident),
          action: fc.constantFrom('accept', 'drop', 'reject', 'log', 'passthrough'),
          protocol: fc.option(fc.constantFrom('tcp', 'udp', 'icmp')),
          src: fc.option(ipv4),
          comment: fc.option(fc.oneof(nasty, long)),
          logPrefix: fc.option(nasty),
          disabled: fc.boolean(),
        }),
        { maxLength: 5 },
      ),
      groups: fc.uniqueArray(
        fc.record({
          name: ident.map((n) => `g-${n}`),
          policy: fc.subarray(['read', 'write', 'api', 'test', 'ssh', 'sensitive'], { minLength: 1 }),
        }),
        { selector: (g) => g.name, maxLength: 2 },
      ),
      users: fc.uniqueArray(
        fc.record({
          name: ident.map((n) => `u-${n}`),
          password: fc.stringMatching(/^[0-9a-f]{8,16}$/).map((h) => `pw-${h}`),
          comment: fc.option(nasty),
          disabled: fc.boolean(),
        }),
        { selector: (u) => u.name, maxLength: 3 },
      ),
      schedulers: fc.uniqueArray(
        fc.record({
          name: nasty.filter((s) => s !== ''),
          interval: fc.constantFrom('0s', '30s', '5m', '1h'),
          onEvent: fc.oneof(nasty, long),
          disabled: fc.boolean(),
        }),
        { selector: (s) => s.name, maxLength: 3 },
      ),
      scripts: fc.uniqueArray(fc.record({ name: ident.map((n) => `s-${n}`), source: fc.oneof(nasty, long) }), {
        selector: (x) => x.name,
        maxLength: 2,
      }),
      routes: fc.uniqueArray(
        fc.record({
          dst: fc.tuple(ipv4, fc.integer({ min: 8, max: 32 })).map(([a, l]) => `${a}/${l}`),
          gateway: ipv4,
          distance: fc.integer({ min: 1, max: 255 }),
        }),
        { selector: (x) => x.dst, maxLength: 3 },
      ),
      ovpn: fc.option(
        fc.record({
          profile: ident.map((n) => `p-${n}`),
          name: ident.map((n) => `ovpn-${n}`),
          password: fc.stringMatching(/^[0-9a-f]{8,16}$/).map((h) => `tun-${h}`),
          cipher: fc.constantFrom(...CIPHERS[version]!),
          user: ident,
        }),
      ),
      bridge: fc.option(ident.map((n) => `br-${n}`)),
      vlan: fc.option(
        fc.record({ id: fc.integer({ min: 1, max: 4094 }), iface: port, name: ident.map((n) => `v-${n}`) }),
      ),
    })
    .map((c) => {
      const s = new Script();
      const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v);
      if (c.identity !== null) s.command('/system/identity', 'set', { name: c.identity });
      if (c.dns) s.command('/ip/dns', 'set', { servers: c.dns });
      if (c.ntp) {
        // RouterOS 6: two address slots and a list of names; 7: one `servers` list.
        const ips = c.ntp.servers.filter((x) => /^\d/.test(x));
        const names = c.ntp.servers.filter((x) => !/^\d/.test(x));
        s.command(
          '/system/ntp/client',
          'set',
          version.startsWith('6.')
            ? {
                enabled: c.ntp.enabled,
                'primary-ntp': ips[0] ?? '0.0.0.0',
                'secondary-ntp': ips[1] ?? '0.0.0.0',
                'server-dns-names': names,
              }
            : { enabled: c.ntp.enabled, servers: c.ntp.servers },
        );
      }
      if (c.ether) {
        s.command(
          '/interface/ethernet',
          'set',
          { comment: c.ether.comment, mtu: c.ether.mtu },
          find({ 'default-name': c.ether.port }),
        );
      }
      for (const sv of c.services) {
        s.command('/ip/service', 'set', { disabled: sv.disabled, address: opt(sv.address) }, find({ name: sv.name }));
      }
      for (const a of c.addresses) {
        s.command('/ip/address', 'add', {
          address: a.address,
          interface: a.iface,
          comment: opt(a.comment),
          disabled: a.disabled,
        });
      }
      for (const l of c.lists) {
        s.command('/ip/firewall/address-list', 'add', {
          list: l.list,
          address: l.address,
          comment: opt(l.comment),
          timeout: opt(l.timeout),
        });
      }
      for (const r of c.rules) {
        const args: ScriptArgs = {
          chain: r.chain,
          action: r.action,
          protocol: opt(r.protocol),
          'src-address': opt(r.src),
          comment: opt(r.comment),
          'log-prefix': opt(r.logPrefix),
          disabled: r.disabled,
        };
        s.line(cmd('/ip/firewall/filter', 'add', args));
      }
      for (const g of c.groups) s.command('/user/group', 'add', { name: g.name, policy: g.policy });
      c.users.forEach((u, i) => {
        const group = c.groups[i % Math.max(1, c.groups.length)]?.name ?? 'read';
        s.command('/user', 'add', {
          name: u.name,
          group,
          password: u.password,
          comment: opt(u.comment),
          disabled: u.disabled,
        });
      });
      for (const sc of c.schedulers) {
        s.command('/system/scheduler', 'add', {
          name: sc.name,
          interval: sc.interval,
          'on-event': sc.onEvent,
          disabled: sc.disabled,
        });
      }
      for (const x of c.scripts) s.command('/system/script', 'add', { name: x.name, source: x.source });
      for (const x of c.routes) {
        s.command('/ip/route', 'add', { 'dst-address': x.dst, gateway: x.gateway, distance: x.distance });
      }
      if (c.ovpn) {
        s.command('/ppp/profile', 'add', { name: c.ovpn.profile, 'use-encryption': 'required' });
        s.command('/interface/ovpn-client', 'add', {
          name: c.ovpn.name,
          'connect-to': 'vpn.example.net',
          user: c.ovpn.user,
          password: c.ovpn.password,
          cipher: c.ovpn.cipher,
          profile: c.ovpn.profile,
        });
      }
      if (c.vlan) {
        s.command('/interface/vlan', 'add', { name: c.vlan.name, 'vlan-id': c.vlan.id, interface: c.vlan.iface });
      }
      if (c.bridge) {
        s.command('/interface/bridge', 'add', { name: c.bridge, 'protocol-mode': 'none' });
        if (c.vlan) s.command('/interface/bridge/port', 'add', { bridge: c.bridge, interface: c.vlan.name });
      }
      return {
        script: s.toString(),
        passwords: { users: c.users.map((u) => u.password), tunnel: c.ovpn ? [c.ovpn.password] : [] },
      };
    });

describe('/export format', () => {
  it('writes the router header, omits defaults, wraps long lines and keeps secrets out', async () => {
    const r = createRouterModel({ seed: 3 });
    const setup = await runScript(
      r,
      `/ip firewall filter add chain=forward comment="a rule whose comment is long enough to need a continuation line"
/user add name=ops group=full password="Secr3t!"
/interface ovpn-client add name=bp-vpn connect-to=vpn.example.net user=site1 password="tunnelpw"
/system scheduler add name=poll interval=30s on-event=":local url \\"https://controller.example.net/poll\\"\\r\\n:do { /tool fetch url=\\$url output=user as-value } on-error={ :log warning \\"poll failed\\" }\\r\\n"`,
    );
    expect(setup.error).toBeUndefined();
    const text = exportConfig(r.engine);
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^# \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} by RouterOS 7\.16$/);
    expect(lines[1]).toMatch(/^# software id = [0-9A-Z]{4}-[0-9A-Z]{4}$/);
    expect(lines[2]).toBe('#');
    expect(lines[3]).toBe('# model = RBD52G-5HacD2HnD');
    expect(lines[4]).toMatch(/^# serial number = [0-9A-F]+$/);
    // Defaults left out (action=accept, log=no, disabled=no); defconf items present.
    expect(text).toContain(
      '/ip firewall filter\nadd chain=input connection-state=established,related,untracked \\\n    comment="defconf: accept established,related,untracked"\nadd chain=input action=drop connection-state=invalid \\\n',
    );
    expect(text).toContain(
      'add chain=forward \\\n    comment="a rule whose comment is long enough to need a continuation line"',
    );
    expect(text).not.toMatch(/action=accept|disabled=no|log=no/);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80);
    // A long script source is continued inside its quotes, and reads back unchanged.
    expect(lines.some((l) => /^ {4}\S.*[^ ]\\$/.test(l) && !l.endsWith(' \\'))).toBe(true);
    const copy = createRouterModel({ seed: 3, noDefaults: true });
    expect((await runScript(copy, text)).error).toBeUndefined();
    expect(copy.state.find('system/scheduler', { name: 'poll' })?.values['on-event']).toBe(
      r.state.find('system/scheduler', { name: 'poll' })?.values['on-event'],
    );
    expect(text).not.toContain('Secr3t');
    expect(text).not.toContain('tunnelpw');

    // show-sensitive shows the tunnel password; a user's password never (RouterOS keeps only a hash).
    const sensitive = exportConfig(r.engine, { showSensitive: true });
    expect(sensitive).not.toContain('Secr3t');
    expect(sensitive).toContain('/user\nadd name=ops group=full\n');
    expect(sensitive).toContain('password=tunnelpw');
  });

  it('terse puts the menu on every line; a menu exports only itself; file= writes /file', async () => {
    const r = createRouterModel();
    const terse = await runScript(r, '/export terse');
    expect(terse.output).toContain(
      '/ip address add address=192.168.88.1/24 network=192.168.88.0 interface=bridge comment=defconf',
    );
    expect(terse.output.filter((l) => !l.startsWith('#')).every((l) => l.startsWith('/'))).toBe(true);

    const perMenu = await runScript(r, '/ip address export');
    const body = perMenu.output.filter((l) => !l.startsWith('#'));
    expect(body[0]).toBe('/ip address');
    expect(body.slice(1).every((l) => l.startsWith('add ') || l.startsWith('    '))).toBe(true);
    expect(body.filter((l) => l.startsWith('add '))).toHaveLength(2);

    const toFile = await runScript(r, '/export file=backup');
    expect(toFile.output).toEqual([]);
    const file = r.state.find('file', { name: 'backup.rsc' });
    expect(file?.values['contents']).toContain('/interface bridge\nadd name=bridge comment=defconf');
  });
});

describe('/system reset-configuration', () => {
  it('no-defaults=yes run-after-reset=backup.rsc restores an export on a bare router', async () => {
    const r = createRouterModel({ seed: 5 });
    await runScript(r, '/ip firewall filter add chain=forward action=drop comment="keep me"\n/export file=backup');
    const before = config(r);
    const reset = await runScript(r, '/system reset-configuration no-defaults=yes run-after-reset=backup.rsc');
    expect(reset.error).toBeUndefined();
    const log = r.state.items('log').map((l) => l.values['message'] ?? '');
    expect(log).toContain('configuration reset by admin');
    expect(log.filter((m) => m.startsWith('run-after-reset failed'))).toEqual([]);
    expect(config(r)).toEqual(before);

    const bare = await runScript(r, '/system reset-configuration no-defaults=yes');
    expect(bare.error).toBeUndefined();
    expect(r.state.items('ip/firewall/filter')).toHaveLength(0);
    expect(r.state.items('ip/address').filter((a) => a.values['dynamic'] !== 'true')).toHaveLength(0);
    expect(r.state.items('user').map((u) => u.values['name'])).toEqual(['admin']);
  });
});

describe('export -> import round trip over random configurations', () => {
  it('a fresh router importing the export has the same configuration', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...VERSIONS).chain((version) => changes(version).map((c) => ({ ...c, version }))),
        fc.integer({ min: 1, max: 1000 }),
        async ({ script, passwords, version }, seed) => {
          const original = createRouterModel({ seed, version });
          const setup = await runScript(original, script);
          expect(setup.error).toBeUndefined();

          const text = exportConfig(original.engine, { showSensitive: true });
          const fresh = createRouterModel({ seed, version, noDefaults: true });
          const imported = await runScript(fresh, text);
          expect(imported.error).toBeUndefined();
          expect(config(fresh)).toEqual(config(original));
          // Exporting the copy gives the same script (header time aside).
          const again = exportConfig(fresh.engine, { showSensitive: true });
          expect(again.split('\n').slice(1)).toEqual(text.split('\n').slice(1));

          // No user password even with show-sensitive.
          for (const pw of passwords.users) expect(text).not.toContain(pw);
          // Without show-sensitive no password appears; the rest still imports.
          const plain = exportConfig(original.engine);
          for (const pw of [...passwords.users, ...passwords.tunnel]) expect(plain).not.toContain(pw);
          const other = createRouterModel({ seed, version, noDefaults: true });
          expect((await runScript(other, plain)).error).toBeUndefined();
        },
      ),
      { numRuns: 80 },
    );
  });
});
