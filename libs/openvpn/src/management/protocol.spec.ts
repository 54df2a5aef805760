import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManagementProtocol, type ManagementEvent, type Reply, type ReplyShape } from './protocol';

function harness(opts?: { maxLineBytes?: number }) {
  const events: ManagementEvent[] = [];
  const replies: Reply[] = [];
  let prompts = 0;
  const p = new ManagementProtocol(
    { event: (e) => events.push(e), reply: (r) => replies.push(r), passwordPrompt: () => prompts++ },
    opts,
  );
  return { p, events, replies, prompts: () => prompts };
}

const feedText = (p: ManagementProtocol, s: string) => p.feed(Buffer.from(s, 'utf8'));

describe('ManagementProtocol: examples from a real 2.6 server', () => {
  it('turns a CONNECT block into one event with its ENV, only at ENV,END', () => {
    const h = harness();
    feedText(h.p, '>CLIENT:CONNECT,7,1\r\n>CLIENT:ENV,username=alice\r\n>CLIENT:ENV,password=p=a,s\r\n');
    expect(h.events).toEqual([]);
    feedText(h.p, '>CLIENT:ENV,untrusted_ip=10.9.0.2\r\n>CLIENT:ENV,END\r\n');
    expect(h.events).toEqual([
      {
        type: 'client-connect',
        cid: 7,
        kid: 1,
        env: { username: 'alice', password: 'p=a,s', untrusted_ip: '10.9.0.2' },
      },
    ]);
  });

  it('parses ESTABLISHED, DISCONNECT, REAUTH, ADDRESS and BYTECOUNT_CLI', () => {
    const h = harness();
    feedText(
      h.p,
      [
        '>CLIENT:ESTABLISHED,3',
        '>CLIENT:ENV,ifconfig_pool_remote_ip=100.64.7.9',
        '>CLIENT:ENV,END',
        '>CLIENT:ADDRESS,3,100.64.7.9,1',
        '>BYTECOUNT_CLI:3,1200,3400',
        '>CLIENT:REAUTH,3,2',
        '>CLIENT:ENV,END',
        '>CLIENT:DISCONNECT,3',
        '>CLIENT:ENV,bytes_received=10',
        '>CLIENT:ENV,END',
        '',
      ].join('\r\n'),
    );
    expect(h.events.map((e) => e.type)).toEqual([
      'client-established',
      'client-address',
      'bytecount-client',
      'client-reauth',
      'client-disconnect',
    ]);
    expect(h.events[1]).toEqual({ type: 'client-address', cid: 3, address: '100.64.7.9', primary: true });
    expect(h.events[2]).toEqual({ type: 'bytecount-client', cid: 3, bytesIn: 1200, bytesOut: 3400 });
    expect(h.events[4]).toEqual({ type: 'client-disconnect', cid: 3, env: { bytes_received: '10' } });
  });

  it('parses INFO, HOLD, LOG (commas kept in the message), STATE, PASSWORD, FATAL and passes unknown ones through', () => {
    const h = harness();
    feedText(
      h.p,
      [
        ">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info",
        '>HOLD:Waiting for hold release:0',
        '>LOG:1700000000,W,TLS Error: a, b, c',
        '>STATE:1700000001,CONNECTED,SUCCESS,100.64.7.9,10.9.0.1,8443,,',
        ">PASSWORD:Verification Failed: 'Auth'",
        '>FATAL:cannot open tun',
        ">NEED-OK:Need 'token-insertion-request' confirmation MSG:Please insert",
        '',
      ].join('\r\n'),
    );
    expect(h.events).toEqual([
      { type: 'info', message: "OpenVPN Management Interface Version 5 -- type 'help' for more info" },
      { type: 'hold', message: 'Waiting for hold release:0' },
      { type: 'log', time: 1700000000, flags: 'W', message: 'TLS Error: a, b, c' },
      {
        type: 'state',
        time: 1700000001,
        state: 'CONNECTED',
        description: 'SUCCESS',
        localIp: '100.64.7.9',
        remoteIp: '10.9.0.1',
        fields: ['1700000001', 'CONNECTED', 'SUCCESS', '100.64.7.9', '10.9.0.1', '8443', '', ''],
      },
      { type: 'password', message: "Verification Failed: 'Auth'" },
      { type: 'fatal', message: 'cannot open tun' },
      { type: 'realtime', name: 'NEED-OK', payload: "Need 'token-insertion-request' confirmation MSG:Please insert" },
    ]);
    expect(h.p.counters.unparsed).toBe(0);
  });

  it('matches single and multi-line replies in order while real-time lines interleave', () => {
    const h = harness();
    h.p.expect('single');
    h.p.expect('multi');
    h.p.expect('single');
    feedText(
      h.p,
      'SUCCESS: hold release succeeded\r\nOpenVPN Version: x\r\n>BYTECOUNT_CLI:1,2,3\r\nManagement Version: 5\r\nEND\r\nERROR: unknown command\r\n',
    );
    expect(h.replies).toEqual([
      { ok: true, message: 'hold release succeeded', lines: [] },
      { ok: true, message: '', lines: ['OpenVPN Version: x', 'Management Version: 5'] },
      { ok: false, message: 'unknown command', lines: [] },
    ]);
    expect(h.events).toHaveLength(1);
  });

  it('ends a multi-line command early on ERROR', () => {
    const h = harness();
    h.p.expect('multi');
    h.p.expect('single');
    feedText(h.p, 'ERROR: status command failed\r\nSUCCESS: ok\r\n');
    expect(h.replies.map((r) => r.ok)).toEqual([false, true]);
  });

  it('recognises the password prompt without a line end, also split across chunks', () => {
    const h = harness();
    h.p.awaitingPassword = true;
    feedText(h.p, 'ENTER PASS');
    expect(h.prompts()).toBe(0);
    feedText(h.p, 'WORD:');
    expect(h.prompts()).toBe(1);
    h.p.expect('single');
    feedText(h.p, 'SUCCESS: password is correct\r\n');
    expect(h.replies).toEqual([{ ok: true, message: 'password is correct', lines: [] }]);
  });

  it('turns malformed lines into unparsed events and counts them', () => {
    const h = harness({ maxLineBytes: 100 });
    feedText(
      h.p,
      [
        '>CLIENT:CONNECT,x,1',
        '>BYTECOUNT_CLI:1,2',
        '>CLIENT:ENV,orphan=1',
        'SUCCESS: nobody asked',
        '>',
        '>lower:case',
        '>CLIENT:CONNECT,1,1',
        '>INFO:block interrupted',
        `>INFO:${'x'.repeat(200)}`,
        '>INFO:after the long one',
        '',
      ].join('\n'),
    );
    const unparsed = h.events.filter((e) => e.type === 'unparsed');
    expect(unparsed).toHaveLength(8);
    expect(h.p.counters.unparsed).toBe(8);
    expect(h.events.filter((e) => e.type === 'info').map((e) => (e as { message: string }).message)).toEqual([
      'block interrupted',
      'after the long one',
    ]);
  });
});

// ---- property tests -------------------------------------------------------------------

const lineText = fc.string({ unit: 'grapheme', maxLength: 40 }).filter((s) => !/[\r\n]/.test(s));
const trimmedText = lineText.map((s) => s.trim());
const uint = fc.nat({ max: 2 ** 40 });
const envName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,15}$/);

interface RealtimeItem {
  lines: string[];
  event: ManagementEvent;
}

const realtimeItem: fc.Arbitrary<RealtimeItem> = fc.oneof(
  fc
    .record({
      action: fc.constantFrom('CONNECT', 'REAUTH', 'ESTABLISHED', 'DISCONNECT'),
      cid: uint,
      kid: uint,
      env: fc.dictionary(envName, lineText, { maxKeys: 6 }),
    })
    .map(({ action, cid, kid, env }): RealtimeItem => {
      const withKid = action === 'CONNECT' || action === 'REAUTH';
      const lines = [
        withKid ? `>CLIENT:${action},${cid},${kid}` : `>CLIENT:${action},${cid}`,
        ...Object.entries(env).map(([k, v]) => `>CLIENT:ENV,${k}=${v}`),
        '>CLIENT:ENV,END',
      ];
      const e = { ...env };
      const event: ManagementEvent =
        action === 'CONNECT'
          ? { type: 'client-connect', cid, kid, env: e }
          : action === 'REAUTH'
            ? { type: 'client-reauth', cid, kid, env: e }
            : action === 'ESTABLISHED'
              ? { type: 'client-established', cid, env: e }
              : { type: 'client-disconnect', cid, env: e };
      return { lines, event };
    }),
  fc.record({ cid: uint, a: uint, b: uint }).map(({ cid, a, b }): RealtimeItem => ({
    lines: [`>BYTECOUNT_CLI:${cid},${a},${b}`],
    event: { type: 'bytecount-client', cid, bytesIn: a, bytesOut: b },
  })),
  fc.record({ cid: uint, primary: fc.boolean() }).map(({ cid, primary }): RealtimeItem => ({
    lines: [`>CLIENT:ADDRESS,${cid},100.64.1.2,${primary ? 1 : 0}`],
    event: { type: 'client-address', cid, address: '100.64.1.2', primary },
  })),
  lineText.map((m): RealtimeItem => ({ lines: [`>INFO:${m}`], event: { type: 'info', message: m } })),
  lineText.map((m): RealtimeItem => ({ lines: [`>HOLD:${m}`], event: { type: 'hold', message: m } })),
  lineText.map((m): RealtimeItem => ({ lines: [`>FATAL:${m}`], event: { type: 'fatal', message: m } })),
  fc
    .record({ t: uint, flags: fc.constantFrom('I', 'W', 'N', 'D', 'F'), m: lineText })
    .map(({ t, flags, m }): RealtimeItem => ({
      lines: [`>LOG:${t},${flags},${m}`],
      event: { type: 'log', time: t, flags, message: m },
    })),
);

interface ReplyItem {
  shape: ReplyShape;
  lines: string[];
  reply: Reply;
}

const bodyLine = lineText.filter((s) => s !== '' && s !== 'END' && !s.startsWith('>') && !s.startsWith('ERROR:'));
const replyItem: fc.Arbitrary<ReplyItem> = fc.oneof(
  fc.record({ ok: fc.boolean(), m: trimmedText }).map(({ ok, m }) => ({
    shape: 'single' as const,
    lines: [`${ok ? 'SUCCESS' : 'ERROR'}: ${m}`],
    reply: { ok, message: m, lines: [] },
  })),
  fc.array(bodyLine, { maxLength: 6 }).map((body) => ({
    shape: 'multi' as const,
    lines: [...body, 'END'],
    reply: { ok: true, message: '', lines: body },
  })),
  trimmedText.map((m) => ({
    shape: 'multi' as const,
    lines: [`ERROR: ${m}`],
    reply: { ok: false, message: m, lines: [] },
  })),
);

/** Real-time items keep their own order and stay whole; reply lines keep theirs. */
const scenario = fc
  .record({
    realtime: fc.array(realtimeItem, { maxLength: 12 }),
    replies: fc.array(replyItem, { maxLength: 8 }),
  })
  .chain(({ realtime, replies }) => {
    const replyLines = replies.flatMap((r) => r.lines);
    return fc.record({
      realtime: fc.constant(realtime),
      replies: fc.constant(replies),
      positions: fc.array(fc.nat({ max: replyLines.length }), {
        minLength: realtime.length,
        maxLength: realtime.length,
      }),
      crlf: fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }),
      cuts: fc.array(fc.nat({ max: 4000 }), { maxLength: 30 }),
    });
  });

describe('ManagementProtocol properties', () => {
  it('yields the same events and replies in order for any interleaving and chunking', () => {
    fc.assert(
      fc.property(scenario, fc.boolean(), ({ realtime, replies, positions, crlf, cuts }, byteByByte) => {
        const replyLines = replies.flatMap((r) => r.lines);
        const order = [...positions].sort((a, b) => a - b).map((pos, i) => ({ pos, i }));
        const lines: string[] = [];
        let next = 0;
        for (const { pos, i } of order) {
          while (next < pos) lines.push(replyLines[next++]!);
          lines.push(...realtime[i]!.lines);
        }
        while (next < replyLines.length) lines.push(replyLines[next++]!);
        const wire = Buffer.from(lines.map((l, i) => l + (crlf[i % crlf.length] ? '\r\n' : '\n')).join(''), 'utf8');

        const h = harness();
        for (const r of replies) h.p.expect(r.shape);
        const points = byteByByte
          ? Array.from({ length: wire.length }, (_, i) => i)
          : [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        let start = 0;
        for (const c of points) {
          h.p.feed(wire.subarray(start, c));
          start = c;
        }
        h.p.feed(wire.subarray(start));

        expect(h.events).toEqual(realtime.map((r) => r.event));
        expect(h.replies).toEqual(replies.map((r) => r.reply));
        expect(h.p.counters.unparsed).toBe(0);
        expect(h.p.waiting).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on random bytes, and keeps counting', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }),
        fc.array(fc.constantFrom<ReplyShape>('single', 'multi'), { maxLength: 5 }),
        fc.boolean(),
        (chunks, shapes, awaiting) => {
          const h = harness({ maxLineBytes: 64 });
          h.p.awaitingPassword = awaiting;
          for (const s of shapes) h.p.expect(s);
          for (const c of chunks) h.p.feed(Buffer.from(c));
          expect(h.p.counters.unparsed).toBe(h.events.filter((e) => e.type === 'unparsed').length);
          expect(h.replies.length + h.p.waiting).toBe(shapes.length);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('never throws on random lines built from protocol-looking pieces', () => {
    const piece = fc.constantFrom(
      '>CLIENT:',
      'CONNECT,',
      'ENV,',
      'END',
      '>BYTECOUNT_CLI:',
      ',',
      '1',
      '=',
      'SUCCESS:',
      'ERROR:',
      '\r',
      '\n',
      'ENTER PASSWORD:',
      '>',
      ':',
      'é',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 80 }), (pieces) => {
        const h = harness();
        h.p.awaitingPassword = true;
        h.p.expect('multi');
        feedText(h.p, pieces.join(''));
        expect(h.p.counters.events + h.p.counters.unparsed).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 300 },
    );
  });
});
