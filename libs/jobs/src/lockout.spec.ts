/**
 * Lockout prediction (issue 18): a table of changes that obviously cut management (and near
 * misses that do not), and properties: a drop rule is a risk exactly when every matcher it
 * has is satisfied by a management packet; adding an unreadable matcher makes it not obvious.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jobRequestPolicy } from './command-policy';
import {
  addressContains,
  predictLockout,
  ruleDropsManagement,
  touchesManagement,
  type ManagementPath,
  type ProposedChange,
} from './lockout';

const SITE = '0b7c1a52-6f0e-4a51-9a39-3c1f2f0d9e11';
const PATH: ManagementPath = {
  siteId: SITE,
  gatewayAddress: '100.64.0.1',
  apiPort: 8728,
  users: ['bp-api', 'bp-admin'],
  ids: { '*7': SITE, '*2': 'api', '*A': 'bp-api' },
};
const cmd = (
  command: string,
  attributes: Record<string, string>,
  current?: Record<string, string>,
): ProposedChange => ({
  kind: 'command',
  command,
  attributes,
  ...(current ? { current } : {}),
});
const rules = (c: ProposedChange) => predictLockout(c, PATH).map((r) => r.rule);

describe('lockout prediction: table', () => {
  const table: [string, ProposedChange, string[]][] = [
    [
      'drop input on the tunnel interface',
      cmd('/ip/firewall/filter/add', { chain: 'input', 'in-interface': SITE, action: 'drop' }),
      ['firewall_drops_management'],
    ],
    [
      'drop input from the gateway',
      cmd('/ip/firewall/filter/add', { chain: 'input', 'src-address': '100.64.0.0/10', action: 'reject' }),
      ['firewall_drops_management'],
    ],
    [
      'drop new tcp connections to the API port',
      cmd('/ip/firewall/filter/add', {
        chain: 'input',
        protocol: 'tcp',
        'dst-port': '8000-9000',
        'connection-state': 'new',
        action: 'drop',
      }),
      ['firewall_drops_management'],
    ],
    [
      'drop all input',
      cmd('/ip/firewall/filter/add', { chain: 'input', action: 'drop' }),
      ['firewall_drops_management'],
    ],
    [
      'raw drop on the tunnel',
      cmd('/ip/firewall/raw/add', { chain: 'prerouting', 'in-interface': SITE, action: 'drop' }),
      ['firewall_drops_management'],
    ],
    [
      'enabling an existing drop rule on the tunnel',
      cmd(
        '/ip/firewall/filter/enable',
        { numbers: '*9' },
        { chain: 'input', 'in-interface': SITE, action: 'drop', disabled: 'true' },
      ),
      ['firewall_drops_management'],
    ],
    [
      'disabling the ovpn-client',
      cmd('/interface/ovpn-client/disable', { numbers: SITE }),
      ['tunnel_interface_disabled'],
    ],
    [
      'removing the ovpn-client by id',
      cmd('/interface/ovpn-client/remove', { '.id': '*7' }),
      ['tunnel_interface_disabled'],
    ],
    [
      'disabling the tunnel interface',
      cmd('/interface/set', { numbers: SITE, disabled: 'yes' }),
      ['tunnel_interface_disabled'],
    ],
    ['removing the PPP profile', cmd('/ppp/profile/remove', { numbers: SITE }), ['tunnel_profile_changed']],
    ['disabling the API service', cmd('/ip/service/disable', { numbers: 'api' }), ['api_service_cut']],
    ['API service to another port', cmd('/ip/service/set', { '.id': '*2', port: '18728' }), ['api_service_cut']],
    [
      'API service restricted away from the gateway',
      cmd('/ip/service/set', { numbers: 'api', address: '192.168.88.0/24' }),
      ['api_service_cut'],
    ],
    ['removing bp-api', cmd('/user/remove', { numbers: 'bp-api' }), ['management_user_changed']],
    ['disabling bp-admin', cmd('/user/set', { numbers: 'bp-admin', disabled: 'yes' }), ['management_user_changed']],
    [
      'apply-config disables a Backplane user',
      { kind: 'desired', state: { menu: 'user', name: 'bp-api', group: 'read', disabled: true } },
      ['management_user_changed'],
    ],
    // near misses: nothing obvious
    [
      'drop forward on the tunnel',
      cmd('/ip/firewall/filter/add', { chain: 'forward', 'in-interface': SITE, action: 'drop' }),
      [],
    ],
    [
      'accept on the tunnel',
      cmd('/ip/firewall/filter/add', { chain: 'input', 'in-interface': SITE, action: 'accept' }),
      [],
    ],
    [
      'drop on another interface',
      cmd('/ip/firewall/filter/add', { chain: 'input', 'in-interface': 'ether1', action: 'drop' }),
      [],
    ],
    [
      'drop everything but the tunnel',
      cmd('/ip/firewall/filter/add', { chain: 'input', 'in-interface': `!${SITE}`, action: 'drop' }),
      [],
    ],
    [
      'drop from an address list',
      cmd('/ip/firewall/filter/add', { chain: 'input', 'src-address-list': 'bad', action: 'drop' }),
      [],
    ],
    [
      'drop ssh',
      cmd('/ip/firewall/filter/add', { chain: 'input', protocol: 'tcp', 'dst-port': '22', action: 'drop' }),
      [],
    ],
    ['drop udp', cmd('/ip/firewall/filter/add', { chain: 'input', protocol: 'udp', action: 'drop' }), []],
    [
      'drop invalid',
      cmd('/ip/firewall/filter/add', { chain: 'input', 'connection-state': 'invalid', action: 'drop' }),
      [],
    ],
    ['a disabled drop rule', cmd('/ip/firewall/filter/add', { chain: 'input', action: 'drop', disabled: 'yes' }), []],
    [
      'API service restricted to include the gateway',
      cmd('/ip/service/set', { numbers: 'api', address: '100.64.0.0/10,10.0.0.0/8' }),
      [],
    ],
    ['disabling telnet', cmd('/ip/service/disable', { numbers: 'telnet' }), []],
    ['another user', cmd('/user/remove', { numbers: 'alice' }), []],
    ['a comment on bp-api', cmd('/user/set', { numbers: 'bp-api', comment: 'x' }), []],
    ['enabling the ovpn-client', cmd('/interface/ovpn-client/enable', { numbers: SITE }), []],
    ['printing the firewall', cmd('/ip/firewall/filter/print', {}), []],
    ['dns', { kind: 'desired', state: { menu: 'dns', servers: ['9.9.9.9'] } }, []],
  ];
  it.each(table)('%s', (_name, change, expected) => {
    expect(rules(change)).toEqual(expected);
  });
});

describe('lockout prediction: properties', () => {
  /** Matchers a management packet (tcp from 100.64.0.1 in on the tunnel to 8728, new) satisfies. */
  const matching = fc.record(
    {
      'in-interface': fc.constantFrom(SITE, '!ether1'),
      'src-address': fc.constantFrom('100.64.0.1', '100.64.0.0/10', '0.0.0.0/0', '!192.0.2.0/24'),
      protocol: fc.constantFrom('tcp', '6'),
      'dst-port': fc.constantFrom('8728', '8000-9000', '22,8728'),
      'connection-state': fc.constantFrom('new', 'established,related', 'new,invalid'),
    },
    { requiredKeys: [] },
  );
  /** One matcher a management packet does not satisfy. */
  const missing = fc.constantFrom<[string, string]>(
    ['in-interface', 'ether1'],
    ['src-address', '192.0.2.0/24'],
    ['protocol', 'udp'],
    ['dst-port', '22'],
    ['connection-state', 'invalid'],
  );
  const action = fc.constantFrom('drop', 'reject', 'tarpit');

  it('a drop rule whose matchers all fit management traffic is a risk', () => {
    fc.assert(
      fc.property(matching, action, (m, a) => {
        expect(ruleDropsManagement('filter', { chain: 'input', action: a, ...m }, PATH)).toBe(true);
      }),
    );
  });

  it('one matcher that excludes management traffic, an unreadable one, another chain or accept: no risk', () => {
    fc.assert(
      fc.property(matching, missing, action, (m, [k, v], a) => {
        expect(ruleDropsManagement('filter', { chain: 'input', action: a, ...m, [k]: v }, PATH)).toBe(false);
        expect(ruleDropsManagement('filter', { chain: 'input', action: a, ...m, 'src-address-list': 'x' }, PATH)).toBe(
          false,
        );
        expect(ruleDropsManagement('filter', { chain: 'forward', action: a, ...m }, PATH)).toBe(false);
        expect(ruleDropsManagement('filter', { chain: 'input', action: 'accept', ...m }, PATH)).toBe(false);
      }),
    );
  });

  it('changes that touch no management menu are never a risk, whatever the path (so its reads can be skipped)', () => {
    const menus = [
      '/ip/firewall/filter',
      '/ip/firewall/raw',
      '/ip/firewall/nat',
      '/interface',
      '/interface/ovpn-client',
      '/interface/bridge',
      '/ppp/profile',
      '/ppp/secret',
      '/ip/service',
      '/user',
      '/user/group',
      '/ip/dns',
      '/system/identity',
    ];
    const change = fc.record({
      menu: fc.constantFrom(...menus),
      verb: fc.constantFrom('add', 'set', 'remove', 'disable', 'enable', 'print'),
      attrs: fc.dictionary(
        fc.constantFrom('numbers', '.id', 'chain', 'action', 'in-interface', 'port', 'address', 'disabled', 'name'),
        fc.constantFrom('*7', '*2', '*A', SITE, 'api', 'bp-api', 'input', 'drop', '0', 'yes', '10.0.0.0/8'),
      ),
    });
    const path: fc.Arbitrary<ManagementPath> = fc.record({
      siteId: fc.constantFrom(SITE, 'other'),
      gatewayAddress: fc.constantFrom('100.64.0.1', '10.1.1.1'),
      apiPort: fc.constantFrom(8728, 0),
      users: fc.constantFrom(['bp-api'], ['admin']),
      ids: fc.constantFrom<Record<string, string>>({ '*7': SITE, '*2': 'api', '*A': 'bp-api' }, {}),
    });
    fc.assert(
      fc.property(fc.array(change, { maxLength: 4 }), path, (cs, p) => {
        const changes = cs.map((c) => cmd(`${c.menu}/${c.verb}`, c.attrs));
        if (!touchesManagement(changes)) {
          expect(changes.flatMap((c) => predictLockout(c, p))).toEqual([]);
        }
      }),
      { numRuns: 2000 },
    );
    // and the other way round: the menus the rules judge are recognised
    expect(touchesManagement([cmd('/ip/firewall/filter/add', { chain: 'input', action: 'drop' })])).toBe(true);
    expect(touchesManagement([cmd('/ip/dns/set', { servers: '1.1.1.1' })])).toBe(false);
  });

  it('prefix containment agrees with the integer arithmetic', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 32 }), (a, n) => {
        const ip = [24, 16, 8, 0].map((s) => (a >>> s) & 255).join('.');
        expect(addressContains(`${ip}/${n}`, ip)).toBe(true);
        expect(addressContains(`0.0.0.0/0`, ip)).toBe(true);
      }),
    );
  });
});

describe('the override is admin-only', () => {
  it('operators cannot ask for allowLockoutRisk; admins can', () => {
    const req = { kind: 'apply-config', payload: { changes: [{ menu: 'dns' }], allowLockoutRisk: true } };
    expect(jobRequestPolicy('operator', SITE, req)).toMatchObject({
      allowed: false,
      rule: 'lockout_override_needs_admin',
    });
    expect(jobRequestPolicy('admin', SITE, req)).toEqual({ allowed: true });
    expect(jobRequestPolicy('operator', SITE, { ...req, payload: { changes: [{ menu: 'dns' }] } })).toEqual({
      allowed: true,
    });
  });

  it('a firewall rule may match on the tunnel interface (the prediction judges it), the tunnel itself stays untouchable', () => {
    const req = (command: string, attributes: Record<string, string>) => ({
      kind: 'run-command',
      payload: { command, attributes },
    });
    expect(
      jobRequestPolicy(
        'admin',
        SITE,
        req('/ip/firewall/filter/add', { chain: 'input', 'in-interface': SITE, action: 'drop' }),
      ),
    ).toEqual({ allowed: true });
    expect(jobRequestPolicy('admin', SITE, req('/interface/ovpn-client/disable', { numbers: SITE }))).toMatchObject({
      rule: 'management_object',
    });
    expect(
      jobRequestPolicy(
        'admin',
        SITE,
        req('/ip/firewall/filter/add', { chain: 'input', comment: SITE, action: 'drop' }),
      ),
    ).toMatchObject({ rule: 'management_object' });
  });
});
