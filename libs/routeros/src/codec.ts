/**
 * RouterOS API wire format: words are a length prefix (1–5 bytes, big-endian) followed
 * by raw bytes; a sentence is words ended by a zero-length word. Words stay bytes here
 * (file contents and backups are binary); text decoding happens at the edge.
 */

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

export type Word = Buffer;
export type Sentence = Word[];

export interface DecoderLimits {
  /** Largest single word accepted (bytes). */
  readonly maxWordBytes: number;
  /** Largest sentence accepted (sum of word bytes). */
  readonly maxSentenceBytes: number;
  /** Most words in one sentence. */
  readonly maxWords: number;
}

export const DEFAULT_LIMITS: DecoderLimits = {
  maxWordBytes: 16 * 1024 * 1024,
  maxSentenceBytes: 64 * 1024 * 1024,
  maxWords: 100_000,
};

/** Largest length the 5-byte form can carry. */
export const MAX_LENGTH = 0xffffffff;

export function encodedLengthSize(len: number): number {
  if (len < 0x80) return 1;
  if (len < 0x4000) return 2;
  if (len < 0x200000) return 3;
  if (len < 0x10000000) return 4;
  return 5;
}

/** Writes the length prefix at `offset`; returns the offset after it. */
export function writeLength(target: Buffer, offset: number, len: number): number {
  if (!Number.isInteger(len) || len < 0 || len > MAX_LENGTH) throw new RangeError(`word length ${len} out of range`);
  if (len < 0x80) {
    target[offset] = len;
    return offset + 1;
  }
  if (len < 0x4000) {
    target.writeUInt16BE(len | 0x8000, offset);
    return offset + 2;
  }
  if (len < 0x200000) {
    const v = len | 0xc00000;
    target[offset] = (v >>> 16) & 0xff;
    target.writeUInt16BE(v & 0xffff, offset + 1);
    return offset + 3;
  }
  if (len < 0x10000000) {
    target.writeUInt32BE((len | 0xe0000000) >>> 0, offset);
    return offset + 4;
  }
  target[offset] = 0xf0;
  target.writeUInt32BE(len >>> 0, offset + 1);
  return offset + 5;
}

export function encodeLength(len: number): Buffer {
  const out = Buffer.allocUnsafe(encodedLengthSize(len));
  writeLength(out, 0, len);
  return out;
}

function toBytes(word: Buffer | string): Buffer {
  return typeof word === 'string' ? Buffer.from(word, 'utf8') : word;
}

/** One sentence on the wire, with its terminating empty word. */
export function encodeSentence(words: readonly (Buffer | string)[]): Buffer {
  const bytes = words.map(toBytes);
  let size = 1;
  for (const w of bytes) size += encodedLengthSize(w.length) + w.length;
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const w of bytes) {
    offset = writeLength(out, offset, w.length);
    offset += w.copy(out, offset);
  }
  out[offset] = 0;
  return out;
}

/**
 * Incremental decoder: feed it TCP chunks split anywhere; it returns every complete
 * sentence. Empty sentences are skipped. Oversized words or sentences and reserved
 * control bytes (first byte >= 0xF8) raise a ProtocolError before anything is buffered,
 * and the decoder stays failed afterwards (the connection must be dropped).
 */
export class SentenceDecoder {
  private pending: Buffer = Buffer.alloc(0);
  private words: Word[] = [];
  private sentenceBytes = 0;
  private failed: ProtocolError | undefined;
  private readonly limits: DecoderLimits;

  constructor(limits: Partial<DecoderLimits> = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  /** Bytes held while waiting for the rest of a word. */
  get bufferedBytes(): number {
    return this.pending.length;
  }

  push(chunk: Buffer): Sentence[] {
    if (this.failed) throw this.failed;
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Sentence[] = [];
    let pos = 0;
    try {
      for (;;) {
        const header = this.readLength(buf, pos);
        if (header === undefined) break;
        const [len, size] = header;
        if (len > this.limits.maxWordBytes) {
          throw new ProtocolError(`word of ${len} bytes exceeds the ${this.limits.maxWordBytes}-byte limit`);
        }
        if (len === 0) {
          pos += size;
          if (this.words.length > 0) out.push(this.words);
          this.words = [];
          this.sentenceBytes = 0;
          continue;
        }
        if (this.sentenceBytes + len > this.limits.maxSentenceBytes) {
          throw new ProtocolError(`sentence exceeds the ${this.limits.maxSentenceBytes}-byte limit`);
        }
        if (this.words.length >= this.limits.maxWords) {
          throw new ProtocolError(`sentence exceeds ${this.limits.maxWords} words`);
        }
        if (buf.length - pos - size < len) break;
        const start = pos + size;
        this.words.push(buf.subarray(start, start + len));
        this.sentenceBytes += len;
        pos = start + len;
      }
    } catch (err) {
      this.failed = err instanceof ProtocolError ? err : new ProtocolError(String(err));
      this.pending = Buffer.alloc(0);
      this.words = [];
      throw this.failed;
    }
    // Keep only the unread tail (copied, so the caller's large chunk is not retained).
    this.pending = pos >= buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos));
    if (this.words.length > 0 && buf === chunk) {
      // Words of an unfinished sentence point into `chunk`; copy them so it can be freed.
      this.words = this.words.map((w) => Buffer.from(w));
    }
    return out;
  }

  /** [length, prefix size], or undefined when the prefix is not complete yet. */
  private readLength(buf: Buffer, pos: number): [number, number] | undefined {
    if (pos >= buf.length) return undefined;
    const b = buf[pos]!;
    if (b < 0x80) return [b, 1];
    if (b < 0xc0) return pos + 2 <= buf.length ? [buf.readUInt16BE(pos) & 0x3fff, 2] : undefined;
    if (b < 0xe0) return pos + 3 <= buf.length ? [((b & 0x1f) << 16) | buf.readUInt16BE(pos + 1), 3] : undefined;
    if (b < 0xf0) return pos + 4 <= buf.length ? [buf.readUInt32BE(pos) & 0x0fffffff, 4] : undefined;
    if (b === 0xf0) return pos + 5 <= buf.length ? [buf.readUInt32BE(pos + 1), 5] : undefined;
    throw new ProtocolError(`reserved control byte 0x${b.toString(16)} in length prefix`);
  }
}
