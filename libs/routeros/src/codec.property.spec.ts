import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  encodedLengthSize,
  encodeLength,
  encodeSentence,
  MAX_LENGTH,
  ProtocolError,
  readLength,
  SentenceDecoder,
  writeLength,
} from './codec';

/** Every boundary of the five encodings, with neighbours. */
const BOUNDARIES = [0, 0x7f, 0x80, 0x3fff, 0x4000, 0x1fffff, 0x200000, 0xfffffff, 0x10000000, MAX_LENGTH];
const boundaryLength = fc.oneof(
  fc.constantFrom(...BOUNDARIES),
  fc
    .tuple(fc.constantFrom(...BOUNDARIES), fc.integer({ min: -3, max: 3 }))
    .map(([b, d]) => Math.min(MAX_LENGTH, Math.max(0, b + d))),
  fc.integer({ min: 0, max: MAX_LENGTH }),
);

function expectedSize(len: number): number {
  return len <= 0x7f ? 1 : len <= 0x3fff ? 2 : len <= 0x1fffff ? 3 : len <= 0xfffffff ? 4 : 5;
}

/** Splits `buf` at the given cut points. */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

const word = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 40 }) },
  { weight: 2, arbitrary: fc.uint8Array({ minLength: 0x7e, maxLength: 0x82 }) },
  // Around the 2/3-byte prefix boundary; filled cheaply (generating 16 KiB byte by byte is slow).
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 0x3ffe, max: 0x4002 }), fc.integer({ min: 0, max: 255 }))
      .map(([n, b]) => new Uint8Array(n).fill(b)),
  },
  { weight: 2, arbitrary: fc.string({ minLength: 1, maxLength: 30 }).map((s) => Buffer.from(s, 'utf8')) },
);
const sentence = fc.array(word, { minLength: 1, maxLength: 6 }).map((ws) => ws.map((w) => Buffer.from(w)));

describe('length prefix (property)', () => {
  it('round-trips every length, using the shortest form, at and around every boundary', () => {
    fc.assert(
      fc.property(boundaryLength, (len) => {
        const prefix = encodeLength(len);
        expect(prefix.length).toBe(expectedSize(len));
        expect(encodedLengthSize(len)).toBe(prefix.length);
        expect(readLength(prefix)).toEqual({ length: len, size: prefix.length });
        // Incomplete prefixes are "not yet", never a wrong length.
        for (let cut = 0; cut < prefix.length; cut++) expect(readLength(prefix.subarray(0, cut))).toBeUndefined();
      }),
      { numRuns: 2000 },
    );
  });

  it('writes at any offset without touching neighbouring bytes', () => {
    fc.assert(
      fc.property(boundaryLength, fc.integer({ min: 0, max: 8 }), (len, offset) => {
        const buf = Buffer.alloc(offset + 8, 0xaa);
        const after = writeLength(buf, offset, len);
        expect(after - offset).toBe(expectedSize(len));
        expect(buf.subarray(0, offset).every((b) => b === 0xaa)).toBe(true);
        expect(buf.subarray(after).every((b) => b === 0xaa)).toBe(true);
        expect(readLength(buf, offset)?.length).toBe(len);
      }),
    );
  });

  it('refuses lengths that cannot be encoded', () => {
    for (const bad of [-1, 0.5, MAX_LENGTH + 1, Number.NaN]) expect(() => encodeLength(bad)).toThrow(RangeError);
  });

  it('the decoder reads huge prefixes exactly (checked through its limit), without buffering the word', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0x4000, max: MAX_LENGTH }), (len) => {
        // Just under the limit: the prefix is accepted and nothing but the prefix is held.
        const fits = new SentenceDecoder({ maxWordBytes: len, maxSentenceBytes: MAX_LENGTH });
        expect(fits.push(encodeLength(len))).toEqual([]);
        expect(fits.heldBytes).toBe(expectedSize(len));
        // One byte over the limit: refused, naming the exact length.
        const over = new SentenceDecoder({ maxWordBytes: len - 1, maxSentenceBytes: MAX_LENGTH });
        expect(() => over.push(encodeLength(len))).toThrow(`word of ${len} bytes`);
      }),
      { numRuns: 300 },
    );
  });
});

describe('encodeSentence (property)', () => {
  it('encodes strings exactly as their UTF-8 bytes (ASCII fast path, any Unicode, long and short)', () => {
    const text = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.string({ unit: 'grapheme', minLength: 60, maxLength: 200 }),
    );
    fc.assert(
      fc.property(fc.array(text, { maxLength: 6 }), (words) => {
        const asBytes = encodeSentence(words.map((w) => Buffer.from(w, 'utf8')));
        expect(encodeSentence(words).equals(asBytes)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('SentenceDecoder (property)', () => {
  it('decodes any sentences split into arbitrary chunks, and holds nothing afterwards', () => {
    fc.assert(
      fc.property(
        fc.array(sentence, { minLength: 0, maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (sentences, cuts) => {
          const wire = Buffer.concat(sentences.map((s) => encodeSentence(s)));
          const d = new SentenceDecoder();
          const got = split(wire, cuts).flatMap((c) => d.push(c));
          expect(got.length).toBe(sentences.length);
          got.forEach((s, i) => {
            expect(s.map((w) => w.toString('hex'))).toEqual(sentences[i]!.map((w) => w.toString('hex')));
          });
          expect(d.heldBytes).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('one byte at a time gives the same result as one chunk', () => {
    fc.assert(
      fc.property(fc.array(sentence, { minLength: 1, maxLength: 3 }), (sentences) => {
        const wire = Buffer.concat(sentences.map((s) => encodeSentence(s)));
        if (wire.length > 5000) return; // keep the byte-wise pass quick
        const whole = new SentenceDecoder().push(wire);
        const d = new SentenceDecoder();
        const bytewise: Buffer[][] = [];
        for (let i = 0; i < wire.length; i++) bytewise.push(...d.push(wire.subarray(i, i + 1)));
        expect(bytewise).toEqual(whole);
      }),
      { numRuns: 100 },
    );
  });

  it('returned sentences do not change when the caller reuses its chunk buffer', () => {
    const wire = Buffer.concat([encodeSentence(['!re', '=name=ether1']), encodeSentence(['!done'])]);
    const chunk = Buffer.from(wire.subarray(0, 10));
    const d = new SentenceDecoder();
    d.push(chunk);
    chunk.fill(0xee); // a socket may recycle its buffer
    const [first] = d.push(Buffer.from(wire.subarray(10)));
    expect(first!.map(String)).toEqual(['!re', '=name=ether1']);
  });

  it('random bytes only ever raise ProtocolError, and never hold more than the limits', () => {
    const limits = { maxWordBytes: 300, maxSentenceBytes: 1000, maxWords: 10 };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
        const d = new SentenceDecoder(limits);
        try {
          for (const c of split(Buffer.from(bytes), cuts)) {
            for (const s of d.push(c)) {
              expect(s.length).toBeLessThanOrEqual(limits.maxWords);
              expect(s.reduce((n, w) => n + w.length, 0)).toBeLessThanOrEqual(limits.maxSentenceBytes);
            }
            expect(d.bufferedBytes).toBeLessThan(limits.maxWordBytes + 5);
            expect(d.heldBytes).toBeLessThanOrEqual(limits.maxWordBytes + 5 + limits.maxSentenceBytes);
          }
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError);
          // Once failed, always failed.
          expect(() => d.push(Buffer.from([0]))).toThrow(ProtocolError);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('mutated valid streams only ever raise ProtocolError', () => {
    fc.assert(
      fc.property(
        fc.array(sentence, { minLength: 1, maxLength: 3 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (sentences, flips, cuts) => {
          const wire = Buffer.from(Buffer.concat(sentences.map((s) => encodeSentence(s))));
          for (const [at, value] of flips) wire[at % wire.length] = value;
          const d = new SentenceDecoder({ maxWordBytes: 0x5000, maxSentenceBytes: 0x10000, maxWords: 20 });
          try {
            for (const c of split(wire, cuts)) d.push(c);
          } catch (err) {
            expect(err).toBeInstanceOf(ProtocolError);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('assembles a large word sent in small chunks in linear time', () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 7);
    const wire = encodeSentence([Buffer.from('=contents='), big]);
    const d = new SentenceDecoder();
    const started = performance.now();
    let got: Buffer[][] = [];
    for (let pos = 0; pos < wire.length; pos += 1024) got = got.concat(d.push(wire.subarray(pos, pos + 1024)));
    // 4096 pushes; re-concatenating the partial word on each push would copy ~8 GiB.
    expect(performance.now() - started).toBeLessThan(2000);
    expect(got).toHaveLength(1);
    expect(got[0]![1]!.equals(big)).toBe(true);
  });
});
