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

/** UTF-8 byte length of a string; short ASCII strings are measured without a native call. */
function utf8Length(w: string): number {
  const n = w.length;
  if (n > 64) return Buffer.byteLength(w, 'utf8');
  for (let i = 0; i < n; i++) if (w.charCodeAt(i) >= 0x80) return Buffer.byteLength(w, 'utf8');
  return n;
}

/** One sentence on the wire, with its terminating empty word. Strings are written as UTF-8. */
export function encodeSentence(words: readonly (Buffer | string)[]): Buffer {
  const n = words.length;
  const lengths = new Array<number>(n);
  let size = 1;
  for (let i = 0; i < n; i++) {
    const w = words[i]!;
    const len = typeof w === 'string' ? utf8Length(w) : w.length;
    lengths[i] = len;
    size += encodedLengthSize(len) + len;
  }
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (let i = 0; i < n; i++) {
    const w = words[i]!;
    const len = lengths[i]!;
    if (len < 0x80) out[offset++] = len;
    else offset = writeLength(out, offset, len);
    if (typeof w !== 'string') offset += w.copy(out, offset);
    else if (len === w.length && len <= 64) {
      // ASCII (checked by utf8Length): copy char codes directly.
      for (let j = 0; j < len; j++) out[offset + j] = w.charCodeAt(j);
      offset += len;
    } else offset += out.write(w, offset, len, 'utf8');
  }
  out[offset] = 0;
  return out;
}

/** Size of the length prefix announced by its first byte (0 for a reserved control byte). */
function prefixSize(first: number): number {
  if (first < 0x80) return 1;
  if (first < 0xc0) return 2;
  if (first < 0xe0) return 3;
  if (first < 0xf0) return 4;
  if (first === 0xf0) return 5;
  return 0;
}

function badPrefix(b: number): ProtocolError {
  const hex = b.toString(16).toUpperCase();
  return new ProtocolError(
    b >= 0xf8 ? `reserved control byte 0x${hex} in length prefix` : `invalid length prefix byte 0x${hex}`,
  );
}

/**
 * Reads the length prefix at `offset`: `{ length, size }`, or undefined when the prefix is
 * not complete yet. Throws a ProtocolError on a reserved control byte (>= 0xF8).
 */
export function readLength(source: Buffer, offset = 0): { length: number; size: number } | undefined {
  if (offset >= source.length) return undefined;
  const b = source[offset]!;
  const size = prefixSize(b);
  if (size === 0) throw badPrefix(b);
  if (offset + size > source.length) return undefined;
  switch (size) {
    case 1:
      return { length: b, size };
    case 2:
      return { length: source.readUInt16BE(offset) & 0x3fff, size };
    case 3:
      return { length: ((b & 0x1f) << 16) | source.readUInt16BE(offset + 1), size };
    case 4:
      return { length: source.readUInt32BE(offset) & 0x0fffffff, size };
    default:
      return { length: source.readUInt32BE(offset + 1), size };
  }
}

/**
 * Incremental decoder: feed it TCP chunks split anywhere; it returns every complete
 * sentence. Empty sentences are skipped. Oversized words or sentences and reserved
 * control bytes (first byte >= 0xF8) raise a ProtocolError before anything is buffered,
 * and the decoder stays failed afterwards (the connection must be dropped).
 *
 * Memory: between calls it holds at most one unfinished word (<= maxWordBytes + 5 bytes)
 * plus the finished words of the current sentence (<= maxSentenceBytes). A word split
 * over many chunks is assembled once, when its last byte arrives (no quadratic copying).
 * Words of returned sentences may share memory with the chunks given to `push`.
 */
export class SentenceDecoder {
  /** Unread bytes (a partial prefix or a partial word), not yet concatenated. */
  private tail: Buffer[] = [];
  private tailBytes = 0;
  /** Bytes the tail must reach before parsing can make progress. */
  private need = 1;
  private words: Word[] = [];
  /** Words before this index are already private copies. */
  private ownedWords = 0;
  private sentenceBytes = 0;
  private failed: ProtocolError | undefined;
  private readonly maxWordBytes: number;
  private readonly maxSentenceBytes: number;
  private readonly maxWords: number;

  constructor(limits: Partial<DecoderLimits> = {}) {
    const l = { ...DEFAULT_LIMITS, ...limits };
    this.maxWordBytes = l.maxWordBytes;
    this.maxSentenceBytes = l.maxSentenceBytes;
    this.maxWords = l.maxWords;
  }

  /** Bytes held while waiting for the rest of a word. */
  get bufferedBytes(): number {
    return this.tailBytes;
  }

  /** Bytes held in total: the unfinished word plus the finished words of the unfinished sentence. */
  get heldBytes(): number {
    return this.tailBytes + this.sentenceBytes;
  }

  push(chunk: Buffer): Sentence[] {
    if (this.failed) throw this.failed;
    if (chunk.length === 0) return [];
    let buf: Buffer;
    if (this.tailBytes === 0) {
      buf = chunk;
    } else {
      this.tail.push(chunk);
      this.tailBytes += chunk.length;
      if (this.tailBytes < this.need) return [];
      buf = Buffer.concat(this.tail, this.tailBytes);
      this.tail = [];
      this.tailBytes = 0;
    }
    try {
      return this.parse(buf, buf === chunk);
    } catch (err) {
      this.failed = err instanceof ProtocolError ? err : new ProtocolError(String(err));
      this.tail = [];
      this.tailBytes = 0;
      this.words = [];
      this.sentenceBytes = 0;
      throw this.failed;
    }
  }

  private parse(buf: Buffer, borrowed: boolean): Sentence[] {
    const out: Sentence[] = [];
    const end = buf.length;
    let pos = 0;
    let need = 1;
    while (pos < end) {
      const b = buf[pos]!;
      let len: number;
      let size: number;
      if (b < 0x80) {
        len = b;
        size = 1;
      } else {
        size = prefixSize(b);
        if (size === 0) throw badPrefix(b);
        if (pos + size > end) {
          need = size;
          break;
        }
        if (size === 2) len = ((b & 0x3f) << 8) | buf[pos + 1]!;
        else if (size === 3) len = ((b & 0x1f) << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
        else if (size === 4) len = buf.readUInt32BE(pos) & 0x0fffffff;
        else len = buf.readUInt32BE(pos + 1);
      }
      if (len === 0) {
        pos += size;
        if (this.words.length > 0) out.push(this.words);
        this.words = [];
        this.ownedWords = 0;
        this.sentenceBytes = 0;
        continue;
      }
      if (len > this.maxWordBytes) {
        throw new ProtocolError(`word of ${len} bytes exceeds the ${this.maxWordBytes}-byte limit`);
      }
      if (this.sentenceBytes + len > this.maxSentenceBytes) {
        throw new ProtocolError(`sentence exceeds the ${this.maxSentenceBytes}-byte limit`);
      }
      if (this.words.length >= this.maxWords) {
        throw new ProtocolError(`sentence exceeds ${this.maxWords} words`);
      }
      const start = pos + size;
      if (start + len > end) {
        need = size + len;
        break;
      }
      this.words.push(buf.subarray(start, start + len));
      this.sentenceBytes += len;
      pos = start + len;
    }
    if (pos < end) {
      // Keep the unread tail; copy it when it is a small part of the caller's chunk.
      const rest = buf.subarray(pos);
      this.tail = [borrowed || rest.length * 2 < buf.length ? Buffer.from(rest) : rest];
      this.tailBytes = rest.length;
    }
    this.need = need;
    if (this.words.length > this.ownedWords) {
      // Words of an unfinished sentence point into `buf`; copy them so it can be freed.
      for (let i = this.ownedWords; i < this.words.length; i++) this.words[i] = Buffer.from(this.words[i]!);
      this.ownedWords = this.words.length;
    }
    return out;
  }
}
