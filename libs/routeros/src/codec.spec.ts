import { describe, expect, it } from 'vitest';
import { encodeLength, encodeSentence, ProtocolError, SentenceDecoder } from './codec';

const hex = (b: Buffer) => b.toString('hex');

describe('length encoding (protocols.md test vectors)', () => {
  it.each([
    [1, '01'],
    [0x87, '8087'],
    [0x4321, 'c04321'],
    [0x2acdef, 'e02acdef'],
    [0x10000080, 'f010000080'],
    [0x80, '8080'],
    [0x4000, 'c04000'],
    [0x200000, 'e0200000'],
    [0x7f, '7f'],
    [0x3fff, 'bfff'],
    [0x1fffff, 'dfffff'],
    [0xfffffff, 'efffffff'],
  ])('%i -> %s', (len, expected) => {
    expect(hex(encodeLength(len))).toBe(expected);
  });
});

describe('SentenceDecoder', () => {
  it('decodes sentences split at every byte boundary and skips empty sentences', () => {
    const wire = Buffer.concat([
      encodeSentence(['/login', '=name=admin', '=password=']),
      Buffer.from([0]),
      encodeSentence(['!done', '=ret=*1', '.tag=7']),
    ]);
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = new SentenceDecoder();
      const got = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
      expect(got.map((s) => s.map((w) => w.toString()))).toEqual([
        ['/login', '=name=admin', '=password='],
        ['!done', '=ret=*1', '.tag=7'],
      ]);
      expect(d.bufferedBytes).toBe(0);
    }
  });

  it('keeps words as raw bytes', () => {
    const bin = Buffer.from([0xff, 0x00, 0xc3, 0x28, 0x80]);
    const [s] = new SentenceDecoder().push(encodeSentence([Buffer.from('=contents='), bin]));
    expect(s![1]!.equals(bin)).toBe(true);
  });

  it('refuses reserved control bytes and oversized words before buffering them', () => {
    expect(() => new SentenceDecoder().push(Buffer.from([0xf8]))).toThrow(ProtocolError);
    const d = new SentenceDecoder({ maxWordBytes: 1000 });
    expect(() => d.push(encodeLength(5000))).toThrow(/exceeds/);
    expect(() => d.push(Buffer.from([0]))).toThrow(ProtocolError);
    const s = new SentenceDecoder({ maxSentenceBytes: 10 });
    expect(() => s.push(encodeSentence(['123456', '789012']))).toThrow(/sentence exceeds/);
  });
});
