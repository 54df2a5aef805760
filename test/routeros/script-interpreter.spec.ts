/**
 * The simulator's RouterOS script interpreter, one construct at a time, as a user pasting
 * scripts into the terminal or importing a file would see it.
 */
import { describe, expect, it } from 'vitest';
import { createRouterModel, runScript } from '../../apps/routeros-sim/src/script/scripting';

function values(r: ReturnType<typeof createRouterModel>, menu: string, key: string): string[] {
  return r.state.items(menu).map((i) => i.values[key] ?? '');
}

describe('menus and commands', () => {
  it('navigates with absolute paths, relative paths and `..`', async () => {
    const r = createRouterModel({ noDefaults: true });
    const result = await runScript(
      r,
      [
        '/ip firewall filter',
        'add chain=forward action=drop comment=one',
        '..',
        'address-list add list=blocked address=192.0.2.7',
        '/ip/firewall/filter/add chain=input action=accept comment=two',
        'address-list add list=c address=192.0.2.8',
        '/ip address add address=10.1.0.1/24 interface=ether2',
      ].join('\n'),
    );
    expect(result.error).toBeUndefined();
    // `..` left /ip firewall filter for /ip firewall; the slash form does not move.
    expect(values(r, 'ip/firewall/filter', 'comment')).toEqual(['one', 'two']);
    expect(values(r, 'ip/firewall/address-list', 'address')).toEqual(['192.0.2.7', '192.0.2.8']);
    expect(values(r, 'ip/address', 'address')).toEqual(['10.1.0.1/24']);
  });

  it('set/remove/enable/disable with [find ...] and where clauses (=, !=, ~, and, or, !, parentheses)', async () => {
    const r = createRouterModel({ noDefaults: true });
    const result = await runScript(
      r,
      `/ip firewall address-list
add list=a address=10.0.0.1 comment=bp-1
add list=a address=10.0.0.2 comment=bp-2
add list=b address=10.0.0.3 comment=other
add list=b address=10.0.0.4 comment=bp-4 disabled=yes
:put [:len [find]]
:put [:len [find where list=a]]
:put [:len [find where list!=a]]
:put [:len [find where comment~"^bp-"]]
:put [:len [find where comment~"^bp-" and !disabled]]
:put [:len [find where (list=a and address=10.0.0.2) or comment=other]]
:put [:len [find where !(list=a or list=b)]]
:put [:len [find list=b disabled=no]]
disable [find where list=a]
enable [find where comment=bp-4]
set [find where address=10.0.0.3] comment="changed by set"
remove [find where address=10.0.0.1]
remove [find where comment="no such thing"]`,
    );
    expect(result.error).toBeUndefined();
    expect(result.output).toEqual(['4', '2', '2', '3', '2', '2', '0', '1']);
    const rows = r.state
      .items('ip/firewall/address-list')
      .map((i) => [i.values['address'], i.values['disabled'] ?? 'false', i.values['comment']]);
    expect(rows).toEqual([
      ['10.0.0.2', 'true', 'bp-2'],
      ['10.0.0.3', 'false', 'changed by set'],
      ['10.0.0.4', 'false', 'bp-4'],
    ]);
  });

  it('set on built-in items by name, get returns typed values', async () => {
    const r = createRouterModel();
    const result = await runScript(
      r,
      `/ip service set telnet disabled=yes
/ip service set api address=10.0.0.0/8
:put [/ip service get api address]
:put ([/ip service get telnet disabled] = true)
/system identity set name="edge-1"
:put [/system identity get name]`,
    );
    expect(result.error).toBeUndefined();
    expect(result.output).toEqual(['10.0.0.0/8', 'true', 'edge-1']);
    expect(r.state.find('ip/service', { name: 'telnet' })!.values['disabled']).toBe('true');
  });

  it('add returns the new id; print as-value and count-only', async () => {
    const r = createRouterModel({ noDefaults: true });
    const result = await runScript(
      r,
      `:local id [/ip address add address=10.2.0.1/24 interface=ether3]
:put $id
:put [/ip address get $id interface]
:put [/ip address print count-only]
:local rows [/ip address print as-value where interface=ether3]
:put ($rows->0->"address")`,
    );
    expect(result.error).toBeUndefined();
    expect(result.output[0]).toMatch(/^\*[0-9A-F]+$/);
    expect(result.output.slice(1)).toEqual(['ether3', '1', '10.2.0.1/24']);
  });
});

describe('variables and control flow', () => {
  it(':local, :global, :set and $var inside strings and arguments', async () => {
    const r = createRouterModel();
    const result = await runScript(
      r,
      `:local name "site-7"
:global counter 1
:set counter ($counter + 41)
:put "name=$name counter=$counter sum=$($counter + 1)"
/system identity set name="$name-edge"
:put [/system identity get name]
:put ("a" . $name . "b")`,
    );
    expect(result.error).toBeUndefined();
    expect(result.output).toEqual(['name=site-7 counter=42 sum=43', 'site-7-edge', 'asite-7b']);
    // Globals outlive the script.
    const second = await runScript(r, ':global counter\n:put $counter');
    expect(second.output).toEqual(['42']);
  });

  it(':if / else, :do on-error, :error, :return', async () => {
    const r = createRouterModel();
    const result = await runScript(
      r,
      `:local n 5
:if ($n > 3) do={ :put "big" } else={ :put "small" }
:if ($n = 3 || $n = 4) do={ :put "3 or 4" } else={ :put "neither" }
:do { /ip address add address=bad interface=ether1; :put "not reached" } on-error={ :put "caught" }
:do { :error "custom failure" } on-error={ :put "caught custom" }
:foreach i in={1;2;3} do={ :put ($i * 10) }
:return "done"
:put "after return"`,
    );
    expect(result.error).toBeUndefined();
    expect(result.output).toEqual(['big', 'neither', 'caught', 'caught custom', '10', '20', '30']);
    expect(result.value).toBe('done');
  });

  it('/execute starts a background job; as-string waits for its output', async () => {
    const r = createRouterModel();
    const started = await runScript(r, ':put [/execute script=":delay 80ms; /system identity set name=bg"]');
    expect(started.error).toBeUndefined();
    expect(started.output[0]).toMatch(/^\*[0-9A-F]+$/);
    expect(r.state.single('system/identity').values['name']).toBe('MikroTik');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(r.state.single('system/identity').values['name']).toBe('bg');
    const waited = await runScript(r, ':put [/execute script=":put 42" as-string]');
    expect(waited.output).toEqual(['42']);
  });

  it(':delay waits, :log writes to /log', async () => {
    const r = createRouterModel();
    const started = Date.now();
    const result = await runScript(r, ':delay 120ms\n:log info "hello from script"\n:log warning "careful"');
    expect(result.error).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(110);
    const log = r.state.items('log').map((i) => [i.values['topics'], i.values['message']]);
    expect(log).toContainEqual(['script,info', 'hello from script']);
    expect(log).toContainEqual(['script,warning', 'careful']);
  });
});

describe('errors', () => {
  it('a failing line stops the script with the router message and its position', async () => {
    const r = createRouterModel({ noDefaults: true });
    const result = await runScript(
      r,
      `/ip address
add address=10.3.0.1/24 interface=ether1
add address=10.3.0.2/24 interface=no-such-port
add address=10.3.0.3/24 interface=ether1`,
    );
    expect(result.ok).toBe(false);
    expect(result.error).toEqual({
      message: 'input does not match any value of interface',
      line: 3,
      column: 1,
    });
    expect(values(r, 'ip/address', 'address')).toEqual(['10.3.0.1/24']);
  });

  it('/import runs a file from /file and stops at the first failing line', async () => {
    const r = createRouterModel({ noDefaults: true });
    r.state.insert('file', {
      name: 'good.rsc',
      contents: '/ip address add address=10.4.0.1/24 interface=ether1\n/system identity set name=imported\n',
    });
    r.state.insert('file', {
      name: 'bad.rsc',
      contents:
        '/ip address add address=10.5.0.1/24 interface=ether1\n/ip address add address=10.5.0.1/24 interface=ether1\n/system identity set name=never\n',
    });
    const ok = await runScript(r, '/import file-name=good.rsc');
    expect(ok.error).toBeUndefined();
    expect(ok.output).toEqual(['Script file loaded and executed successfully']);
    expect(r.state.single('system/identity').values['name']).toBe('imported');

    const bad = await runScript(r, '/import file-name=bad.rsc');
    expect(bad.ok).toBe(false);
    expect(bad.error?.message).toBe('failure: already have such address (line 2 column 1)');
    expect(r.state.single('system/identity').values['name']).toBe('imported');

    const missing = await runScript(r, '/import file-name=nope.rsc');
    expect(missing.error?.message).toBe('no such file');
  });

  it('unknown commands and menus are reported as bad command names', async () => {
    const r = createRouterModel();
    const typo = await runScript(r, ':put 1\n/ip adress add address=10.6.0.1/24 interface=ether1\n:put 2');
    expect(typo.error).toEqual({ message: 'bad command name adress', line: 2, column: 1 });
    expect(typo.output).toEqual(['1']);
    const verb = await runScript(r, '/ip address frobnicate');
    expect(verb.error?.message).toBe('bad command name frobnicate');
  });

  it('reads CRLF files, tabs, continuation lines and raw UTF-8 like escaped bytes', async () => {
    const r = createRouterModel({ noDefaults: true });
    const result = await runScript(
      r,
      '/ip address\r\nadd address=10.7.0.1/24 \\\r\n\tinterface=ether1 comment="Café"\r\n:put [get [find] comment]\r\n',
    );
    expect(result.error).toBeUndefined();
    const stored = r.state.items('ip/address')[0]!.values['comment']!;
    expect(stored).toBe(Buffer.from('Café', 'utf8').toString('latin1'));
    const escaped = await runScript(r, ':put ([/ip address get [find] comment] = "Caf\\C3\\A9")');
    expect(escaped.output).toEqual(['true']);
  });

  it('re-running an onboarding-style script converges (remove [find ...] of nothing is fine)', async () => {
    const r = createRouterModel();
    const script = `/user group remove [find name=bp-api]
/user group add name=bp-api policy=read,write,api,test
/user remove [find name=bp]
/user add name=bp group=bp-api password="s3cret"
/system scheduler remove [find name=bp-poll]
/system scheduler add name=bp-poll interval=30s on-event=":log info poll"`;
    for (let i = 0; i < 3; i++) expect((await runScript(r, script)).error).toBeUndefined();
    expect(values(r, 'user', 'name')).toEqual(['admin', 'bp']);
    expect(values(r, 'system/scheduler', 'name')).toEqual(['bp-poll']);
  });
});
