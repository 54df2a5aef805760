/**
 * RouterOS API codec throughput: our encodeSentence + SentenceDecoder against node-routeros's
 * own Transmitter/Receiver classes, on the same sentences, in one run. Both sides turn words
 * into strings (node-routeros always does; we do it at the edge), so the work is the same.
 */
import { encodeSentence, SentenceDecoder } from '@backplane/routeros';
import type { BenchSection } from './types';

interface TransmitterLike {
  encodeString(word: string | null): Buffer | string;
}
interface ReceiverLike {
  read(tag: string, callback: (packet: string[]) => void): void;
  processRawData(data: Buffer): void;
}
type Ctor<T> = new (socket: unknown) => T;

/* eslint-disable @typescript-eslint/no-require-imports */
const { Transmitter } = require('node-routeros/dist/connector/Transmitter') as { Transmitter: Ctor<TransmitterLike> };
const { Receiver } = require('node-routeros/dist/connector/Receiver') as { Receiver: Ctor<ReceiverLike> };
/* eslint-enable @typescript-eslint/no-require-imports */

/** A realistic reply: 500 interface rows (~20 attributes each, some long values), then !done. */
function workload(): string[][] {
  const rows: string[][] = [];
  for (let i = 0; i < 500; i++) {
    rows.push([
      '!re',
      `=.id=*${(i + 1).toString(16).toUpperCase()}`,
      `=name=ether${i + 1}`,
      `=default-name=ether${i + 1}`,
      '=type=ether',
      '=mtu=1500',
      '=actual-mtu=1500',
      '=l2mtu=1598',
      '=max-l2mtu=9796',
      `=mac-address=4C:5E:0C:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}:01`,
      '=last-link-up-time=2024-05-01 12:00:00',
      '=link-downs=0',
      `=rx-byte=${1_000_000_000 + i * 7919}`,
      `=tx-byte=${2_000_000_000 + i * 104729}`,
      `=rx-packet=${10_000_000 + i}`,
      `=tx-packet=${20_000_000 + i}`,
      '=fp-rx-byte=0',
      '=fp-tx-byte=0',
      '=running=true',
      '=disabled=false',
      `=comment=${i % 10 === 0 ? 'uplink to core switch, rack 4, patch panel B-17; '.repeat(4) : 'lan'}`,
      '.tag=1',
    ]);
  }
  rows.push(['!done', '.tag=1']);
  return rows;
}

const CHUNK = 64 * 1024;

function chunked(wire: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let p = 0; p < wire.length; p += CHUNK) out.push(wire.subarray(p, p + CHUNK));
  return out;
}

/** Our side: encode every sentence, decode the wire in 64 KiB chunks, words to strings. */
function ours(sentences: string[][]): number {
  const wire = Buffer.concat(sentences.map((s) => encodeSentence(s)));
  const decoder = new SentenceDecoder();
  let words = 0;
  for (const chunk of chunked(wire)) {
    for (const s of decoder.push(chunk)) {
      for (const w of s) words += w.toString('utf8').length > 0 ? 1 : 0;
    }
  }
  return words;
}

/** node-routeros: Transmitter.encodeString per word (+ terminator), Receiver.processRawData. */
function theirs(sentences: string[][]): number {
  const socket = { emit: () => false, writable: true, write: () => true };
  const tx = new Transmitter(socket);
  const parts: Buffer[] = [];
  for (const s of sentences) {
    for (const w of s) parts.push(tx.encodeString(w) as Buffer);
    parts.push(Buffer.from([0]));
  }
  const wire = Buffer.concat(parts);
  const rx = new Receiver(socket);
  let words = 0;
  rx.read('1', (packet) => {
    words += packet.length + 1; // + the tag word it strips
  });
  for (const chunk of chunked(wire)) rx.processRawData(chunk);
  return words;
}

/** Runs `fn` repeatedly for `ms`; returns runs per second. */
function rate(fn: () => number, ms: number): number {
  const end = performance.now() + ms;
  let runs = 0;
  const start = performance.now();
  while (performance.now() < end) {
    fn();
    runs++;
  }
  return runs / ((performance.now() - start) / 1000);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export default function bench(): Promise<BenchSection> {
  const sentences = workload();
  const wireBytes = Buffer.concat(sentences.map((s) => encodeSentence(s))).length;
  const wordCount = sentences.reduce((n, s) => n + s.length, 0);
  // Both sides must see the same words.
  const a = ours(sentences);
  const b = theirs(sentences);
  if (a !== wordCount || b !== wordCount)
    throw new Error(`word counts differ: ours ${a}, node-routeros ${b}, expected ${wordCount}`);
  // Warm up, then alternate rounds so machine noise hits both alike.
  rate(() => ours(sentences), 300);
  rate(() => theirs(sentences), 300);
  const oursRates: number[] = [];
  const theirRates: number[] = [];
  for (let round = 0; round < 5; round++) {
    oursRates.push(rate(() => ours(sentences), 1000));
    theirRates.push(rate(() => theirs(sentences), 1000));
  }
  const o = median(oursRates);
  const t = median(theirRates);
  const mib = wireBytes / 2 ** 20;
  const fmt = (runs: number) =>
    `| ${(runs * mib).toFixed(1)} MiB/s | ${Math.round((runs * sentences.length) / 1000)} k sentences/s | ${Math.round(((runs * wordCount) / 1e6) * 10) / 10} M words/s |`;
  const ratio = o / t;
  return Promise.resolve({
    id: 'routeros-codec',
    title: 'RouterOS API codec: encode + decode throughput vs node-routeros',
    markdown: [
      `Workload: one reply of ${sentences.length} sentences (${wordCount} words, ${(wireBytes / 1024).toFixed(0)} KiB on the wire: 500 interface rows with 20 attributes each, some long comments), ` +
        'encoded sentence by sentence, then decoded from 64 KiB chunks with every word turned into a string. ' +
        'Median of 5 alternating one-second rounds per side.',
      '',
      '| codec | throughput | sentences | words |',
      '|---|---|---|---|',
      `| @backplane/routeros (encodeSentence + SentenceDecoder) ${fmt(o)}`,
      `| node-routeros 1.6.9 (Transmitter + Receiver) ${fmt(t)}`,
      '',
      `**Ratio: ${ratio.toFixed(1)}×** node-routeros's throughput (target ≥ 2×) — ${ratio >= 2 ? 'met' : 'NOT met'}.`,
    ].join('\n'),
  });
}
