/**
 * A minimal MaxMind DB (MMDB v2) writer for test fixtures, after MaxMind-DB-spec.md:
 * an IPv4 search tree with 24-bit records, a data section, then the metadata map. Enough
 * for City-shaped records (maps, strings, doubles, unsigned ints, arrays, booleans).
 */
export type MmdbValue = string | number | boolean | readonly MmdbValue[] | { readonly [k: string]: MmdbValue };

/** A double (JS numbers that are not integers are written as doubles anyway). */
export class Double {
  constructor(readonly value: number) {}
}

function ctrl(type: number, size: number): Buffer {
  const ext = type > 7;
  const t = ext ? 0 : type;
  const head: number[] = [];
  let sizeBytes: number[] = [];
  let s = size;
  if (s < 29) head.push((t << 5) | s);
  else if (s < 29 + 256) {
    head.push((t << 5) | 29);
    sizeBytes = [s - 29];
  } else if (s < 285 + 65536) {
    head.push((t << 5) | 30);
    s -= 285;
    sizeBytes = [s >> 8, s & 255];
  } else {
    head.push((t << 5) | 31);
    s -= 65821;
    sizeBytes = [(s >> 16) & 255, (s >> 8) & 255, s & 255];
  }
  if (ext) head.push(type - 7);
  return Buffer.from([...head, ...sizeBytes]);
}

function uint(type: number, n: number): Buffer {
  const bytes: number[] = [];
  let v = BigInt(n);
  while (v > 0n) {
    bytes.unshift(Number(v & 255n));
    v >>= 8n;
  }
  return Buffer.concat([ctrl(type, bytes.length), Buffer.from(bytes)]);
}

export function encode(v: MmdbValue | Double): Buffer {
  if (v instanceof Double) {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v.value);
    return Buffer.concat([ctrl(3, 8), b]);
  }
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    return Buffer.concat([ctrl(2, b.length), b]);
  }
  if (typeof v === 'boolean') return ctrl(14, v ? 1 : 0);
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) return encode(new Double(v));
    return uint(v <= 0xffff ? 5 : v <= 0xffffffff ? 6 : 9, v);
  }
  if (Array.isArray(v)) return Buffer.concat([ctrl(11, v.length), ...v.map((x: MmdbValue) => encode(x))]);
  const entries = Object.entries(v as Record<string, MmdbValue>);
  return Buffer.concat([ctrl(7, entries.length), ...entries.flatMap(([k, x]) => [encode(k), encode(x)])]);
}

interface TrieNode {
  children: [TrieNode | number | undefined, TrieNode | number | undefined];
}

/** Networks as `a.b.c.d/len` -> record; longest prefix wins on lookup. IPv4 only. */
export function writeMmdb(networks: readonly (readonly [string, MmdbValue])[], databaseType = 'GeoLite2-City'): Buffer {
  const dataParts: Buffer[] = [];
  const offsets: number[] = [];
  let size = 0;
  for (const [, rec] of networks) {
    offsets.push(size);
    const b = encode(rec);
    dataParts.push(b);
    size += b.length;
  }
  const root: TrieNode = { children: [undefined, undefined] };
  networks.forEach(([cidr], idx) => {
    const [addr, lenText] = cidr.split('/');
    const len = Number(lenText);
    const ip = addr!.split('.').reduce((a, o) => a * 256 + Number(o), 0);
    let node = root;
    for (let bit = 0; bit < len; bit++) {
      const side = (Math.floor(ip / 2 ** (31 - bit)) & 1) as 0 | 1;
      if (bit === len - 1) {
        node.children[side] = -(idx + 1); // data marker
        break;
      }
      let next = node.children[side];
      if (typeof next !== 'object') {
        next = { children: [next, next] }; // a shorter network stays below the split
        node.children[side] = next;
      }
      node = next;
    }
  });
  const nodes: TrieNode[] = [];
  const number = new Map<TrieNode, number>();
  const walk = (n: TrieNode): void => {
    number.set(n, nodes.length);
    nodes.push(n);
    for (const c of n.children) if (typeof c === 'object') walk(c);
  };
  walk(root);
  const nodeCount = nodes.length;
  const record = (c: TrieNode | number | undefined): number => {
    if (c === undefined) return nodeCount; // no data
    if (typeof c === 'object') return number.get(c)!;
    return nodeCount + 16 + offsets[-c - 1]!;
  };
  const tree = Buffer.alloc(nodeCount * 6);
  nodes.forEach((n, i) => {
    tree.writeUIntBE(record(n.children[0]), i * 6, 3);
    tree.writeUIntBE(record(n.children[1]), i * 6 + 3, 3);
  });
  const metadata = encode({
    node_count: nodeCount,
    record_size: 24,
    ip_version: 4,
    database_type: databaseType,
    languages: ['en'],
    binary_format_major_version: 2,
    binary_format_minor_version: 0,
    build_epoch: Math.floor(Date.now() / 1000),
    description: { en: 'Backplane test fixture' },
  });
  return Buffer.concat([
    tree,
    Buffer.alloc(16),
    ...dataParts,
    Buffer.from([0xab, 0xcd, 0xef]),
    Buffer.from('MaxMind.com'),
    metadata,
  ]);
}
