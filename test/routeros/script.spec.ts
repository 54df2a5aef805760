/**
 * The script builder/escaper (libs/routeros) against the simulator's script parser and
 * engine: whatever a user types survives unchanged and stays inert.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  cmd,
  cond,
  duration,
  find,
  id,
  ip,
  menuPath,
  propertyName,
  quote,
  Script,
  ScriptBuildError,
  ScriptFragment,
  scriptTest,
  scriptValue,
  sub,
  variable,
} from '@backplane/routeros';
import { Engine, RouterState } from '../../apps/routeros-sim/src';
import { populate } from '../../apps/routeros-sim/src/model/defaults';
import { parseScript, ScriptSyntaxError } from '../../apps/routeros-sim/src/script/parser';
import { installScripting, runScript } from '../../apps/routeros-sim/src/script/scripting';

/** A router without sockets that counts reboots. */
function model(): { state: RouterState; engine: Engine; reboots: () => number } {
  const state = new RouterState({ version: '7.16', seed: 7 });
  populate(state, { identity: 'MikroTik', users: [], groups: [] });
  let reboots = 0;
  const engine = new Engine(state, { reboot: () => reboots++ });
  installScripting(engine);
  return { state, engine, reboots: () => reboots };
}

/** Everything a script could have changed, except the log and the values under test. */
function snapshot(state: RouterState): string {
  const menus = ['interface', 'ip/address', 'ip/route', 'ip/firewall/filter', 'user', 'system/scheduler', 'file'];
  return JSON.stringify(menus.map((m) => state.items(m).map((i) => [i.id, i.values])));
}

const NASTY = [
  'foo"] ; /system reboot;',
  '$(/system reboot)',
  '[/system reboot]',
  '$[/system reboot]',
  'trailing backslash \\',
  '\\',
  '\\"',
  '"; /user add name=evil group=full password=x; :put "',
  'line1\nline2\r\n/system reboot\n',
  '}\n/system reboot\n{',
  '$x',
  '$',
  '?',
  '# not a comment',
  '\0\x01\x7f\xff',
  'ünïcødé ☃ 𝄞 日本',
  '\\n\\r\\t\\$\\?',
  '',
];

const adversarial = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(...NASTY),
  fc
    .array(fc.constantFrom('"', '\\', '$', '(', ')', '[', ']', '{', '}', ';', '\n', '\r', '/system reboot', ' ', 'x'), {
      maxLength: 20,
    })
    .map((parts) => parts.join('')),
);

describe('script literals', () => {
  it('escapes quotes, backslashes, dollars, question marks and control bytes the RouterOS way', () => {
    expect(quote('a"b\\c$d?e').text).toBe('"a\\"b\\\\c\\$d\\?e"');
    expect(quote('\n\r\t').text).toBe('"\\n\\r\\t"');
    expect(quote('\x00\x1f\x7f').text).toBe('"\\00\\1F\\7F"');
    // Non-ASCII text: its UTF-8 bytes, upper-case hex.
    expect(quote('é☃').text).toBe('"\\C3\\A9\\E2\\98\\83"');
    // Bytes are written as they are.
    expect(quote(Uint8Array.from([0xff, 0x41])).text).toBe('"\\FFA"');
  });

  it('refuses malformed Unicode and names that are not names', () => {
    expect(() => quote('\ud800')).toThrow(ScriptBuildError);
    expect(() => propertyName('comment=x')).toThrow(ScriptBuildError);
    expect(() => propertyName('a b')).toThrow(ScriptBuildError);
    expect(() => menuPath('/ip;/system reboot')).toThrow(ScriptBuildError);
    expect(() => variable('x;y')).toThrow(ScriptBuildError);
    expect(() => cmd('/ip/address', 'add;reboot')).toThrow(ScriptBuildError);
    expect(() => cmd('/ip/address', 'add', { 'comment="x"': 'y' })).toThrow(ScriptBuildError);
    expect(() => scriptValue(1.5)).toThrow(ScriptBuildError);
    // A fragment cannot be forged from a string outside the builder.
    expect(() => new ScriptFragment(Symbol('script fragment'), '/system reboot')).toThrow(ScriptBuildError);
    expect(() => scriptValue(['a,b'])).toThrow(ScriptBuildError);
    expect(ip('10.0.0.1/24').text).toBe('10.0.0.1/24');
    expect(ip('2001:db8::1/64').text).toBe('2001:db8::1/64');
    expect(() => ip('10.0.0.1; /system reboot')).toThrow(ScriptBuildError);
    expect(() => ip('10.0.0.256')).toThrow(ScriptBuildError);
    expect(id('*1a').text).toBe('*1A');
    expect(() => id('*1 ]; /system reboot')).toThrow(ScriptBuildError);
    expect(duration('1d2h').text).toBe('1d2h');
    expect(() => duration('1d; /system reboot')).toThrow(ScriptBuildError);
    expect(scriptValue(['10.0.0.0/8', '192.168.0.0/16']).text).toBe('"10.0.0.0/8,192.168.0.0/16"');
    expect(new Script().comment('multi\nline $x').toString()).toBe('# multi?line $x\n');
  });

  it('builds commands, finds, conditions and scripts', () => {
    expect(cmd('/ip/address', 'add', { address: '10.0.0.1/24', interface: 'ether1', disabled: false })).toHaveProperty(
      'text',
      '/ip address add address="10.0.0.1/24" interface="ether1" disabled=no',
    );
    expect(find({ name: 'bp "x"' }).text).toBe('[find where name="bp \\"x\\""]');
    expect(find().text).toBe('[find]');
    expect(find(cond.or(cond.match('comment', '^bp-'), cond.not(cond.is('disabled')))).text).toBe(
      '[find where (comment~"^bp-" or !(disabled))]',
    );
    const s = new Script()
      .menu('/ip/firewall/filter')
      .command('', 'remove', {}, find({ comment: 'bp' }))
      .local('n', 3)
      .if(
        scriptTest.gt(variable('n'), 2),
        (b) => b.put('big'),
        (b) => b.put('small'),
      )
      .do(
        (b) => b.command('/system/identity', 'set', { name: 'x' }),
        (b) => b.log('error', 'failed'),
      )
      .toString();
    expect(s).toBe(
      [
        '/ip firewall filter',
        'remove [find where comment="bp"]',
        ':local n 3',
        ':if ($n>2) do={',
        '    :put "big"',
        '} else={',
        '    :put "small"',
        '}',
        ':do {',
        '    /system identity set name="x"',
        '} on-error={',
        '    :log error "failed"',
        '}',
        '',
      ].join('\n'),
    );
  });
});

describe('escaping property: builder -> simulator parser -> engine', () => {
  it('any Unicode string survives as a value and stays inert', async () => {
    await fc.assert(
      fc.asyncProperty(adversarial, async (text) => {
        const r = model();
        const before = snapshot(r.state);
        const script = new Script()
          .command('/system/identity', 'set', { name: text })
          .command('/ip/dns', 'set', { 'cache-max-ttl': '1d' })
          .toString();
        const result = await runScript(r, script);
        expect(result.error).toBeUndefined();
        expect(result.output).toEqual([]);
        const stored = r.engine.row(r.state.menu('system/identity'), r.state.single('system/identity'))['name']!;
        expect(Buffer.from(stored, 'latin1').toString('utf8')).toBe(text);
        // The command after the value still ran, nothing else did.
        expect(r.state.single('ip/dns').values['cache-max-ttl']).toBe('1d');
        expect(r.reboots()).toBe(0);
        expect(snapshot(r.state)).toBe(before);
      }),
      { numRuns: 300 },
    );
  });

  it('any byte string survives as a comment and is found again by find where comment=...', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 48 }), adversarial, async (bytes, text) => {
        const r = model();
        const script = new Script()
          .command('/ip/firewall/address-list', 'add', { list: `L${text}`, address: '10.9.9.9', comment: bytes })
          .local('hit', sub(cmd('/ip/firewall/address-list', 'find', { list: `L${text}` })))
          .command('/ip/firewall/address-list', 'set', { disabled: true }, find({ comment: bytes }))
          .command('/ip/firewall/address-list', 'set', { comment: 'found' }, variable('hit'))
          .toString();
        const result = await runScript(r, script);
        expect(result.error).toBeUndefined();
        const items = r.state.items('ip/firewall/address-list');
        expect(items).toHaveLength(1);
        expect(Buffer.from(items[0]!.values['list']!, 'latin1').toString('utf8')).toBe(`L${text}`);
        expect(items[0]!.values['comment']).toBe('found');
        expect(items[0]!.values['disabled']).toBe('true');
        expect(r.reboots()).toBe(0);
      }),
      { numRuns: 200 },
    );
  });

  it('injection attempts inside values run nothing', async () => {
    const r = model();
    const before = snapshot(r.state);
    const s = new Script();
    for (const text of NASTY) s.command('/system/identity', 'set', { name: text });
    const result = await runScript(r, s.toString());
    expect(result.ok).toBe(true);
    expect(result.output).toEqual([]);
    expect(r.reboots()).toBe(0);
    expect(snapshot(r.state)).toBe(before);
    expect(r.state.items('user').map((u) => u.values['name'])).toEqual(['admin']);
  });

  it('the same unescaped text WOULD run a command (the test can fail)', async () => {
    const r = model();
    const result = await runScript(r, '/system identity set name="foo"; /system reboot; :put "x"');
    expect(result.ok).toBe(true);
    expect(r.reboots()).toBe(1);
  });
});

describe('parser robustness', () => {
  const tokens = fc.constantFrom(
    '/ip address',
    'add',
    'name=',
    '"',
    '\\',
    '$',
    '$(',
    '[',
    ']',
    '{',
    '}',
    '(',
    ')',
    ';',
    '\n',
    '\r\n',
    ' ',
    ':local',
    ':if',
    'do=',
    'where',
    'and',
    '!',
    '~',
    '->',
    '#',
    'x',
    '1.2.3.4/24',
    '..',
  );
  it('any input either parses or fails with a positioned syntax error (no crash, no hang)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 80 }),
          fc.array(tokens, { maxLength: 40 }).map((t) => t.join('')),
        ),
        (source) => {
          try {
            parseScript(source);
          } catch (err) {
            expect(err).toBeInstanceOf(ScriptSyntaxError);
            const e = err as ScriptSyntaxError;
            expect(e.message).toBe(`syntax error (line ${e.line} column ${e.column})`);
            expect(e.line).toBeLessThanOrEqual(source.split('\n').length);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('deep nesting is a syntax error, not a stack overflow', () => {
    expect(() => parseScript(`:put ${'['.repeat(5000)}`)).toThrow(ScriptSyntaxError);
    expect(() => parseScript(`:put ${'('.repeat(5000)}1${')'.repeat(5000)}`)).toThrow(ScriptSyntaxError);
    expect(() => parseScript(':if (true) do={'.repeat(3000))).toThrow(ScriptSyntaxError);
    expect(() => parseScript(`:put (${'!'.repeat(5000)}true)`)).toThrow(ScriptSyntaxError);
    expect(() => parseScript(`:put [find where ${'!('.repeat(5000)}`)).toThrow(ScriptSyntaxError);
  });
});

describe('syntax errors', () => {
  it.each([
    // Unterminated string: reported at its opening quote.
    ['/ip address add address=10.0.0.1/24 interface="ether1', 1, 47],
    [':put 1\n:put (1 + )', 2, 11],
    // Unknown escape: reported at the backslash.
    [':local a "x"\n:put "bad \\q escape"', 2, 11],
    ['/ip address\nadd address=10.0.0.9/24 interface=ether1 ]', 2, 42],
    // Unclosed block: reported where the input ends.
    [':if (true) do={ :put 1 ', 1, 24],
  ])('%j -> line %i column %i', async (source, line, column) => {
    const r = model();
    const before = snapshot(r.state);
    const result = await runScript(r, source);
    expect(result.ok).toBe(false);
    expect(result.error).toEqual({ message: `syntax error (line ${line} column ${column})`, line, column });
    // Nothing ran: the whole script is parsed first.
    expect(snapshot(r.state)).toBe(before);
    expect(result.output).toEqual([]);
  });
});
