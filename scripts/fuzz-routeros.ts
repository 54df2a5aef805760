/**
 * Fuzzes the RouterOS sentence decoder with random and mutated byte streams, split into
 * random chunks. A run passes when every input either decodes or fails with a
 * ProtocolError (no other exception), no input takes longer than the hang threshold, the
 * decoder never holds more than its limits allow, and unmutated streams decode back to
 * exactly the sentences that were encoded.
 *
 *   npm run build:js && node dist/scripts/fuzz-routeros.js [count] [seed]
 *
 * The test suite runs a smaller sample of the same engine (libs/routeros/src/codec.fuzz.spec.ts).
 */
import { encodeLength, encodeSentence, ProtocolError, SentenceDecoder, type DecoderLimits } from '@backplane/routeros';

export interface FuzzOptions {
  readonly count: number;
  readonly seed?: number;
  /** An input slower than this counts as a hang (ms). */
  readonly hangMs?: number;
  /** Called every `progressEvery` inputs. */
  readonly onProgress?: (done: number) => void;
  readonly progressEvery?: number;
}

export interface FuzzFailure {
  readonly kind: 'crash' | 'hang' | 'overbuffer' | 'mismatch';
  readonly detail: string;
  /** Hex of the input that failed (first 256 bytes). */
  readonly input: string;
}

export interface FuzzReport {
  readonly inputs: number;
  readonly bytes: number;
  readonly sentences: number;
  readonly protocolErrors: number;
  readonly slowestMs: number;
  readonly failures: FuzzFailure[];
  readonly seconds: number;
}

/** Small limits so mutated length prefixes hit them often. */
export const FUZZ_LIMITS: DecoderLimits = { maxWordBytes: 4096, maxSentenceBytes: 16_384, maxWords: 64 };

/** mulberry32: small, fast, seedable. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING_LENGTHS = [
  0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 0x1fffff, 0x200000, 0xfffffff, 0x10000000, 0xffffffff, 4095, 4096, 4097,
];
const WORDS = ['!re', '!done', '!trap', '!fatal', '!empty', '.tag=1', '=ret=*A', '=message=interrupted', '=.id=*1'];

class Gen {
  constructor(readonly next: () => number) {}
  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  word(): Buffer {
    const r = this.next();
    if (r < 0.4) return Buffer.from(this.pick(WORDS));
    if (r < 0.9) return this.bytes(1 + this.int(40));
    if (r < 0.97) return this.bytes(0x80 + this.int(300)); // 2-byte prefix
    // Around the 2/3-byte boundary (beyond the fuzz limits); filled cheaply.
    const big = Buffer.alloc(0x4000 - 2 + this.int(4), this.int(256));
    big[this.int(big.length)] = this.int(256);
    return big;
  }
  sentences(): Buffer[][] {
    const n = this.int(5);
    const out: Buffer[][] = [];
    for (let i = 0; i < n; i++) {
      const words: Buffer[] = [];
      const w = 1 + this.int(6);
      for (let j = 0; j < w; j++) words.push(this.word());
      out.push(words);
    }
    return out;
  }
  mutate(input: Buffer): Buffer {
    let b = Buffer.from(input);
    const rounds = 1 + this.int(4);
    for (let i = 0; i < rounds; i++) {
      const op = this.int(7);
      const at = b.length === 0 ? 0 : this.int(b.length);
      if (op === 0 && b.length > 0) b[at] = this.int(256);
      else if (op === 1 && b.length > 0) b[at] = b[at]! ^ (1 << this.int(8));
      else if (op === 2) b = Buffer.concat([b.subarray(0, at), this.bytes(1 + this.int(8)), b.subarray(at)]);
      else if (op === 3) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + this.int(8))]);
      else if (op === 4) b = b.subarray(0, at);
      else if (op === 5)
        b = Buffer.concat([b.subarray(0, at), encodeLength(this.pick(INTERESTING_LENGTHS)), b.subarray(at)]);
      else if (op === 6 && b.length > 0)
        b[at] = this.pick([0x7f, 0x80, 0xbf, 0xc0, 0xdf, 0xe0, 0xef, 0xf0, 0xf7, 0xf8, 0xff]);
    }
    return b;
  }
  chunks(input: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    const mode = this.int(3);
    while (pos < input.length) {
      const size = mode === 0 ? input.length : mode === 1 ? 1 + this.int(4) : 1 + this.int(64);
      out.push(input.subarray(pos, pos + size));
      pos += size;
    }
    return out;
  }
}

function sameSentences(a: Buffer[][], b: Buffer[][]): boolean {
  if (a.length !== b.length) return false;
  return a.every((s, i) => {
    const t = b[i]!;
    return s.length === t.length && s.every((w, j) => w.equals(t[j]!));
  });
}

function withinLimits(s: Buffer[][]): boolean {
  return s.every((words) => {
    const total = words.reduce((n, w) => n + w.length, 0);
    return (
      words.length <= FUZZ_LIMITS.maxWords &&
      total <= FUZZ_LIMITS.maxSentenceBytes &&
      words.every((w) => w.length <= FUZZ_LIMITS.maxWordBytes)
    );
  });
}

export function fuzzDecoder(options: FuzzOptions): FuzzReport {
  const seed = options.seed ?? 1;
  const hangMs = options.hangMs ?? 1000;
  const g = new Gen(rng(seed));
  const failures: FuzzFailure[] = [];
  const maxHeld = FUZZ_LIMITS.maxWordBytes + 5 + FUZZ_LIMITS.maxSentenceBytes;
  let bytes = 0;
  let sentences = 0;
  let protocolErrors = 0;
  let slowestMs = 0;
  const started = performance.now();
  for (let i = 0; i < options.count; i++) {
    if (options.onProgress && options.progressEvery && i > 0 && i % options.progressEvery === 0) {
      options.onProgress(i);
    }
    // A third of the inputs are valid streams (checked against what was encoded).
    const kind = g.int(3);
    const expected = kind === 0 ? g.sentences() : undefined;
    const input =
      expected !== undefined
        ? Buffer.concat(expected.map((s) => encodeSentence(s)))
        : kind === 1
          ? g.bytes(g.int(200))
          : g.mutate(Buffer.concat(g.sentences().map((s) => encodeSentence(s))));
    bytes += input.length;
    const decoder = new SentenceDecoder(FUZZ_LIMITS);
    const got: Buffer[][] = [];
    let error: unknown;
    const t0 = performance.now();
    try {
      for (const chunk of g.chunks(input)) {
        got.push(...decoder.push(chunk));
        if (decoder.heldBytes > maxHeld) {
          failures.push({ kind: 'overbuffer', detail: `held ${decoder.heldBytes} bytes`, input: hexOf(input) });
          break;
        }
      }
    } catch (err) {
      error = err;
    }
    const ms = performance.now() - t0;
    slowestMs = Math.max(slowestMs, ms);
    sentences += got.length;
    if (ms > hangMs) failures.push({ kind: 'hang', detail: `${ms.toFixed(0)} ms`, input: hexOf(input) });
    if (error !== undefined && !(error instanceof ProtocolError)) {
      failures.push({ kind: 'crash', detail: describe(error), input: hexOf(input) });
    } else if (error instanceof ProtocolError) {
      protocolErrors++;
      // A failed decoder must stay failed, with a ProtocolError.
      try {
        decoder.push(Buffer.from([0]));
        failures.push({ kind: 'crash', detail: 'decoder accepted input after failing', input: hexOf(input) });
      } catch (again) {
        if (!(again instanceof ProtocolError)) {
          failures.push({ kind: 'crash', detail: describe(again), input: hexOf(input) });
        }
      }
    }
    if (!withinLimits(got))
      failures.push({ kind: 'overbuffer', detail: 'sentence beyond limits', input: hexOf(input) });
    if (expected !== undefined) {
      const fits = withinLimits(expected);
      const ok = fits ? error === undefined && sameSentences(got, expected) : error instanceof ProtocolError;
      if (!ok) failures.push({ kind: 'mismatch', detail: `valid stream (fits=${fits})`, input: hexOf(input) });
    }
    if (failures.length >= 20) break;
  }
  return {
    inputs: options.count,
    bytes,
    sentences,
    protocolErrors,
    slowestMs,
    failures,
    seconds: (performance.now() - started) / 1000,
  };
}

function describe(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : JSON.stringify(err);
}

function hexOf(b: Buffer): string {
  return b.subarray(0, 256).toString('hex');
}

function main(): void {
  const count = Number(process.argv[2] ?? 1_000_000);
  const seed = Number(process.argv[3] ?? Date.now() % 2 ** 31);
  if (!Number.isInteger(count) || count <= 0)
    throw new Error(`count must be a positive integer, got ${process.argv[2]}`);
  process.stdout.write(`fuzzing the RouterOS decoder: ${count} inputs, seed ${seed}\n`);
  const report = fuzzDecoder({
    count,
    seed,
    progressEvery: 100_000,
    onProgress: (done) => process.stdout.write(`  ${done} inputs\n`),
  });
  const crashes = report.failures.filter((f) => f.kind === 'crash').length;
  const hangs = report.failures.filter((f) => f.kind === 'hang').length;
  process.stdout.write(
    `${report.inputs} inputs, ${(report.bytes / 2 ** 20).toFixed(1)} MiB, ${report.sentences} sentences decoded, ` +
      `${report.protocolErrors} ProtocolErrors, slowest input ${report.slowestMs.toFixed(2)} ms, ` +
      `${report.seconds.toFixed(1)} s\ncrashes: ${crashes}, hangs: ${hangs}, other failures: ${report.failures.length - crashes - hangs}\n`,
  );
  for (const f of report.failures) process.stdout.write(`  ${f.kind}: ${f.detail} input=${f.input}\n`);
  process.exitCode = report.failures.length === 0 ? 0 : 1;
}

if (typeof require !== 'undefined' && require.main === module) main();
