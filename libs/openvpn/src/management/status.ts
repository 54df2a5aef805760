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

const CLIENT_COLUMNS = [
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
];
const ROUTE_COLUMNS = ['Virtual Address', 'Common Name', 'Real Address', 'Last Ref', 'Last Ref (time_t)'];

function num(v: string | undefined): number {
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : 0;
}
function optNum(v: string | undefined): number | undefined {
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}
function epoch(v: string | undefined): Date | undefined {
  return v !== undefined && /^\d+$/.test(v) ? new Date(Number(v) * 1000) : undefined;
}

export function parseStatus3(lines: readonly string[]): ServerStatus {
  let title = '';
  let time: Date | undefined;
  let clientCols = CLIENT_COLUMNS;
  let routeCols = ROUTE_COLUMNS;
  const clients: StatusClient[] = [];
  const routes: StatusRoute[] = [];
  const globalStats: Record<string, string> = Object.create(null) as Record<string, string>;
  const unparsed: string[] = [];

  for (const line of lines) {
    const f = line.split('\t');
    const kind = f[0];
    if (kind === 'TITLE') title = f.slice(1).join('\t');
    else if (kind === 'TIME') time = epoch(f[2]);
    else if (kind === 'HEADER' && f[1] === 'CLIENT_LIST') clientCols = f.slice(2);
    else if (kind === 'HEADER' && f[1] === 'ROUTING_TABLE') routeCols = f.slice(2);
    else if (kind === 'HEADER') continue;
    else if (kind === 'CLIENT_LIST') {
      const row = f.slice(1);
      const get = (name: string) => {
        const i = clientCols.indexOf(name);
        return i < 0 ? undefined : row[i];
      };
      if (row.length < 3) {
        unparsed.push(line);
        continue;
      }
      clients.push({
        commonName: get('Common Name') ?? '',
        realAddress: get('Real Address') ?? '',
        virtualAddress: get('Virtual Address') ?? '',
        virtualIpv6Address: get('Virtual IPv6 Address') ?? '',
        bytesReceived: num(get('Bytes Received')),
        bytesSent: num(get('Bytes Sent')),
        connectedSince: epoch(get('Connected Since (time_t)')),
        username: get('Username') ?? '',
        clientId: optNum(get('Client ID')),
        peerId: optNum(get('Peer ID')),
        dataChannelCipher: get('Data Channel Cipher') ?? '',
      });
    } else if (kind === 'ROUTING_TABLE') {
      const row = f.slice(1);
      const get = (name: string) => {
        const i = routeCols.indexOf(name);
        return i < 0 ? undefined : row[i];
      };
      if (row.length < 3) {
        unparsed.push(line);
        continue;
      }
      routes.push({
        virtualAddress: get('Virtual Address') ?? '',
        commonName: get('Common Name') ?? '',
        realAddress: get('Real Address') ?? '',
        lastRef: epoch(get('Last Ref (time_t)')),
      });
    } else if (kind === 'GLOBAL_STATS' && f.length >= 3) globalStats[f[1]!] = f.slice(2).join('\t');
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
