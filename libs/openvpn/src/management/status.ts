/**
 * `status 3` output (tab separated). Columns are located through the HEADER rows when
 * present, so a server that adds a column does not shift the others.
 */

export interface StatusClient {
  readonly commonName: string;
  readonly realAddress: string;
  readonly virtualAddress: string;
  readonly virtualIpv6Address: string;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  readonly connectedSince: Date | undefined;
  readonly username: string;
  /** The management CID (`client-kill`, `client-auth`), undefined when the server has none. */
  readonly clientId: number | undefined;
  readonly peerId: number | undefined;
  readonly dataChannelCipher: string;
}

export interface StatusRoute {
  readonly virtualAddress: string;
  readonly commonName: string;
  readonly realAddress: string;
  readonly lastRef: Date | undefined;
}

export interface ServerStatus {
  readonly title: string;
  readonly time: Date | undefined;
  readonly clients: readonly StatusClient[];
  readonly routes: readonly StatusRoute[];
  /** GLOBAL_STATS rows: name -> value (e.g. `Max bcast/mcast queue length` -> `0`). */
  readonly globalStats: Readonly<Record<string, string>>;
  /** Rows that did not fit (kept for diagnosis, never fatal). */
  readonly unparsed: readonly string[];
}

/** Column names of the `CLIENT_LIST` rows of `status 3`, in the order OpenVPN 2.6 writes them. */
export const CLIENT_COLUMNS = [
  'Common Name',
  'Real Address',
  'Virtual Address',
  'Virtual IPv6 Address',
  'Bytes Received',
  'Bytes Sent',
  'Connected Since',
  'Connected Since (time_t)',
  'Username',
  'Client ID',
  'Peer ID',
  'Data Channel Cipher',
] as const;
/** Column names of the `ROUTING_TABLE` rows of `status 3`. */
export const ROUTE_COLUMNS = [
  'Virtual Address',
  'Common Name',
  'Real Address',
  'Last Ref',
  'Last Ref (time_t)',
] as const;

function num(v: string | undefined): number {
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : 0;
}
function optNum(v: string | undefined): number | undefined {
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}
function epoch(v: string | undefined): Date | undefined {
  return v !== undefined && /^\d+$/.test(v) ? new Date(Number(v) * 1000) : undefined;
}

/** Column positions for the names we read, from a HEADER row's column names. */
function columns<const K extends string>(names: readonly string[], wanted: readonly K[]): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const w of wanted) out[w] = names.indexOf(w);
  return out;
}

export function parseStatus3(lines: readonly string[]): ServerStatus {
  let title = '';
  let time: Date | undefined;
  let cc = columns(CLIENT_COLUMNS, CLIENT_COLUMNS);
  let rc = columns(ROUTE_COLUMNS, ROUTE_COLUMNS);
  const clients: StatusClient[] = [];
  const routes: StatusRoute[] = [];
  const globalStats: Record<string, string> = Object.create(null) as Record<string, string>;
  const unparsed: string[] = [];
  const at = (row: readonly string[], i: number) => (i < 0 ? undefined : row[i + 1]);

  for (const line of lines) {
    const f = line.split('\t');
    const kind = f[0];
    if ((kind === 'CLIENT_LIST' || kind === 'ROUTING_TABLE') && f.length < 4) unparsed.push(line);
    else if (kind === 'CLIENT_LIST') {
      clients.push({
        commonName: at(f, cc['Common Name']) ?? '',
        realAddress: at(f, cc['Real Address']) ?? '',
        virtualAddress: at(f, cc['Virtual Address']) ?? '',
        virtualIpv6Address: at(f, cc['Virtual IPv6 Address']) ?? '',
        bytesReceived: num(at(f, cc['Bytes Received'])),
        bytesSent: num(at(f, cc['Bytes Sent'])),
        connectedSince: epoch(at(f, cc['Connected Since (time_t)'])),
        username: at(f, cc['Username']) ?? '',
        clientId: optNum(at(f, cc['Client ID'])),
        peerId: optNum(at(f, cc['Peer ID'])),
        dataChannelCipher: at(f, cc['Data Channel Cipher']) ?? '',
      });
    } else if (kind === 'ROUTING_TABLE') {
      routes.push({
        virtualAddress: at(f, rc['Virtual Address']) ?? '',
        commonName: at(f, rc['Common Name']) ?? '',
        realAddress: at(f, rc['Real Address']) ?? '',
        lastRef: epoch(at(f, rc['Last Ref (time_t)'])),
      });
    } else if (kind === 'TITLE') title = f.slice(1).join('\t');
    else if (kind === 'TIME') time = epoch(f[2]);
    else if (kind === 'HEADER' && f[1] === 'CLIENT_LIST') cc = columns(f.slice(2), CLIENT_COLUMNS);
    else if (kind === 'HEADER' && f[1] === 'ROUTING_TABLE') rc = columns(f.slice(2), ROUTE_COLUMNS);
    else if (kind === 'HEADER') continue;
    else if (kind === 'GLOBAL_STATS' && f.length >= 3) globalStats[f[1]!] = f.slice(2).join('\t');
    else unparsed.push(line);
  }
  return { title, time, clients, routes, globalStats, unparsed };
}

export interface LoadStats {
  readonly clients: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

/** `nclients=N,bytesin=N,bytesout=N` (the message of `load-stats`). */
export function parseLoadStats(message: string): LoadStats | undefined {
  const m = /^nclients=(\d+),bytesin=(\d+),bytesout=(\d+)$/.exec(message.trim());
  if (!m) return undefined;
  return { clients: Number(m[1]), bytesIn: Number(m[2]), bytesOut: Number(m[3]) };
}
