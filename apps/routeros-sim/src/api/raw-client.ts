/**
 * A deliberately dumb API client for the simulator's own tests: it sends sentences and
 * records every reply sentence verbatim, so tests can assert on the exact wire words.
 * (The product's client lives in libs/routeros.)
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { encodeSentence, SentenceDecoder } from '@backplane/routeros';

export type Reply = string[];

export class RawApiClient {
  readonly replies: Reply[] = [];
  closed = false;
  private readonly decoder = new SentenceDecoder();
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const s of this.decoder.push(chunk)) this.replies.push(s.map((w) => w.toString('latin1')));
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  static connect(port: number, host = '127.0.0.1', tls?: ConnectionOptions): Promise<RawApiClient> {
    return new Promise((resolve, reject) => {
      const socket = tls
        ? tlsConnect({ port, host, ...tls }, () => resolve(new RawApiClient(socket)))
        : netConnect({ port, host }, () => resolve(new RawApiClient(socket)));
      socket.once('error', reject);
    });
  }

  send(...words: string[]): void {
    this.socket.write(encodeSentence(words.map((w) => Buffer.from(w, 'latin1'))));
  }

  writeRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Waits until `pred` holds over the replies received so far (or the timeout). */
  async until(pred: (replies: Reply[]) => boolean, timeoutMs = 3000): Promise<Reply[]> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.replies)) {
      if (this.closed) throw new Error(`connection closed; replies: ${JSON.stringify(this.replies)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout; replies: ${JSON.stringify(this.replies)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.replies;
  }

  /** Sends a command and returns its replies up to and including `!done` (untagged). */
  async call(...words: string[]): Promise<Reply[]> {
    const start = this.replies.length;
    this.send(...words);
    await this.until((r) => r.slice(start).some((s) => s[0] === '!done' || s[0] === '!fatal'));
    const end = this.replies.slice(start).findIndex((s) => s[0] === '!done' || s[0] === '!fatal');
    return this.replies.slice(start, start + end + 1);
  }

  async login(name = 'admin', password = ''): Promise<Reply[]> {
    return this.call('/login', `=name=${name}`, `=password=${password}`);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** `=k=v` words of a reply -> object. */
export function attrs(reply: Reply): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of reply.slice(1)) {
    if (!w.startsWith('=')) continue;
    const eq = w.indexOf('=', 1);
    out[w.slice(1, eq)] = w.slice(eq + 1);
  }
  return out;
}
