/**
 * The simulator's control endpoint (loopback HTTP, `--control-port`): list routers and
 * inject faults into one of them while clients are connected.
 *
 *   GET    /routers                      [{ id, identity, host, port, tlsPort, restPort, sshPort, faults }]
 *   GET    /routers/<id>                 one router (id: 1-based index or identity)
 *   POST   /routers/<id>/faults          {"latencyMs":500} {"silent":true} {"partialReplies":true}
 *                                        {"dropConnections":true} {"rejectLogins":true}
 *                                        {"slowReplyBytesPerSecond":50} {"dropNow":true} {"reboot":true}
 *   DELETE /routers/<id>/faults          every fault off
 *   GET    /routers/<id>/clock           { date, time, wallMs, uptime, timeScale }
 *   POST   /routers/<id>/clock           {"advanceMs":120000} time passes at once (scheduler
 *                                        entries due in between run; uptime grows);
 *                                        {"timeScale":60} router seconds per real second
 *   POST   /routers/<id>/ingress         {"interface":"bp-site","src":"100.64.0.1"} how direct
 *                                        (non-tunnel) connections present to the firewall and
 *                                        /ip service; {"interface":"auto"} / {"src":null} reset
 *   POST   /routers/<id>/releases        {"stable":"7.20.2","long-term":"7.16.2"} what the
 *                                        update channels offer (for this router's major)
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { SimRouter } from '../router';
import { FAULT_KEYS, type RouterFaults } from './faults';

export interface RouterDirectory {
  readonly routers: readonly SimRouter[];
  get(id: string): SimRouter | undefined;
}

export interface ControlServer {
  readonly port: number;
  close(): Promise<void>;
}

const BOOLEAN_FAULTS = new Set(['lateRowAfterCancel', 'dropConnections', 'partialReplies', 'rejectLogins', 'silent']);
const NUMBER_FAULTS = new Set(['latencyMs', 'slowReplyBytesPerSecond']);

function describe(id: number, r: SimRouter): Record<string, unknown> {
  return {
    id: String(id),
    identity: r.identity,
    version: r.version,
    host: r.host,
    port: r.port,
    ...(r.tlsPort !== undefined ? { tlsPort: r.tlsPort } : {}),
    ...(r.services.rest?.httpsPort ? { restPort: r.services.rest.httpsPort } : {}),
    ...(r.services.rest?.httpPort ? { restHttpPort: r.services.rest.httpPort } : {}),
    ...(r.services.ssh ? { sshPort: r.services.ssh.port, sshFingerprint: r.services.ssh.fingerprint } : {}),
    faults: { ...r.faults },
    openConnections: r.services.tcp.size,
    droppedConnections: r.services.tcp.dropped,
    ingress: { interface: r.ingress.interface ?? 'auto', src: r.ingress.src ?? null },
  };
}

/** Applies a faults document; returns an error message for bad input. */
export function applyFaults(router: SimRouter, doc: unknown): string | undefined {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'expected a JSON object';
  const faults: RouterFaults = router.faults;
  const entries = Object.entries(doc as Record<string, unknown>);
  for (const [k, v] of entries) {
    if (k === 'dropNow' || k === 'reboot' || k === 'clear') {
      if (v !== true) return `${k} must be true`;
    } else if (BOOLEAN_FAULTS.has(k)) {
      if (typeof v !== 'boolean') return `${k} must be a boolean`;
    } else if (NUMBER_FAULTS.has(k)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return `${k} must be a number >= 0`;
    } else {
      return `unknown fault ${k} (known: ${[...FAULT_KEYS, 'dropNow', 'reboot', 'clear'].join(', ')})`;
    }
  }
  const d = doc as Record<string, unknown>;
  if (d['clear'] === true) for (const k of FAULT_KEYS) Reflect.deleteProperty(faults, k);
  for (const [k, v] of entries) {
    if (BOOLEAN_FAULTS.has(k) || NUMBER_FAULTS.has(k)) Object.assign(faults, { [k]: v });
  }
  if (d['dropNow'] === true) router.services.tcp.dropAll();
  if (d['reboot'] === true) void router.reboot();
  return undefined;
}

function clockOf(router: SimRouter): Record<string, unknown> {
  const st = router.state;
  return { ...st.clock(), wallMs: st.wallNow(), uptime: Math.floor(st.uptime()), timeScale: st.timeScale };
}

/** `{"advanceMs": n}` and/or `{"timeScale": k}`; returns an error message for bad input. */
export function applyClock(router: SimRouter, doc: unknown): string | undefined {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'expected a JSON object';
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d)) if (k !== 'advanceMs' && k !== 'timeScale') return `unknown key ${k}`;
  const adv = d['advanceMs'];
  const scale = d['timeScale'];
  if (adv !== undefined && (typeof adv !== 'number' || !Number.isFinite(adv) || adv < 0)) {
    return 'advanceMs must be a number >= 0';
  }
  if (scale !== undefined && (typeof scale !== 'number' || !Number.isFinite(scale) || scale <= 0 || scale > 10_000)) {
    return 'timeScale must be a number in (0, 10000]';
  }
  if (typeof scale === 'number') router.state.setTimeScale(scale);
  if (typeof adv === 'number') router.state.advance(adv);
  return undefined;
}

/** `{"interface": name|"auto", "src": ip|null}`. */
export function applyIngress(router: SimRouter, doc: unknown): string | undefined {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'expected a JSON object';
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d)) if (k !== 'interface' && k !== 'src') return `unknown key ${k}`;
  const iface = d['interface'];
  const src = d['src'];
  if (iface !== undefined && (typeof iface !== 'string' || iface === '')) return 'interface must be a name or auto';
  if (src !== undefined && src !== null && (typeof src !== 'string' || !/^\d{1,3}(\.\d{1,3}){3}$/.test(src))) {
    return 'src must be an IPv4 address or null';
  }
  if (typeof iface === 'string') router.ingress.interface = iface === 'auto' ? undefined : iface;
  if (src === null) router.ingress.src = undefined;
  else if (typeof src === 'string') router.ingress.src = src;
  router.services.tcp.reevaluate();
  return undefined;
}

const CHANNELS = new Set(['stable', 'long-term', 'testing', 'development', 'upgrade']);

/** `{"stable":"7.20.2", ...}`: what the channels offer this router's major version. */
export function applyReleases(router: SimRouter, doc: unknown): string | undefined {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'expected a JSON object';
  const entries = Object.entries(doc as Record<string, unknown>);
  for (const [k, v] of entries) {
    if (!CHANNELS.has(k)) return `unknown channel ${k}`;
    if (typeof v !== 'string' || !/^\d+\.\d+(\.\d+)?((beta|rc)\d+)?$/.test(v)) return `${k}: not a RouterOS version`;
  }
  const st = router.state;
  const major = st.features.v7 ? 'v7' : 'v6';
  st.latestVersion = undefined;
  st.releases = { ...st.releases, [major]: { ...st.releases[major], ...Object.fromEntries(entries) } };
  return undefined;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 65536) throw new Error('body too large');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? (JSON.parse(text) as unknown) : {};
}

export function startControlServer(
  directory: RouterDirectory,
  options: { port?: number; host?: string } = {},
): Promise<ControlServer> {
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://control');
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      if (parts[0] !== 'routers') return send(res, 404, { error: 'not found' });
      if (parts.length === 1 && req.method === 'GET') {
        return send(
          res,
          200,
          directory.routers.map((r, i) => describe(i + 1, r)),
        );
      }
      const router = directory.get(parts[1] ?? '');
      if (!router) return send(res, 404, { error: `no router ${parts[1] ?? ''}` });
      const id = directory.routers.indexOf(router) + 1;
      if (parts.length === 2 && req.method === 'GET') return send(res, 200, describe(id, router));
      if (parts.length === 3 && parts[2] === 'faults') {
        if (req.method === 'DELETE') {
          applyFaults(router, { clear: true });
          return send(res, 200, describe(id, router));
        }
        if (req.method === 'POST') {
          let doc: unknown;
          try {
            doc = await readJson(req);
          } catch (err) {
            return send(res, 400, { error: `bad JSON: ${err instanceof Error ? err.message : String(err)}` });
          }
          const problem = applyFaults(router, doc);
          if (problem) return send(res, 400, { error: problem });
          return send(res, 200, describe(id, router));
        }
      }
      if (parts.length === 3 && parts[2] === 'clock') {
        if (req.method === 'GET') return send(res, 200, clockOf(router));
        if (req.method === 'POST') {
          let doc: unknown;
          try {
            doc = await readJson(req);
          } catch (err) {
            return send(res, 400, { error: `bad JSON: ${err instanceof Error ? err.message : String(err)}` });
          }
          const problem = applyClock(router, doc);
          if (problem) return send(res, 400, { error: problem });
          return send(res, 200, clockOf(router));
        }
      }
      if (parts.length === 3 && parts[2] === 'ingress' && req.method === 'POST') {
        let doc: unknown;
        try {
          doc = await readJson(req);
        } catch (err) {
          return send(res, 400, { error: `bad JSON: ${err instanceof Error ? err.message : String(err)}` });
        }
        const problem = applyIngress(router, doc);
        if (problem) return send(res, 400, { error: problem });
        return send(res, 200, describe(id, router));
      }
      if (parts.length === 3 && parts[2] === 'releases' && req.method === 'POST') {
        let doc: unknown;
        try {
          doc = await readJson(req);
        } catch (err) {
          return send(res, 400, { error: `bad JSON: ${err instanceof Error ? err.message : String(err)}` });
        }
        const problem = applyReleases(router, doc);
        if (problem) return send(res, 400, { error: problem });
        return send(res, 200, router.state.features.v7 ? router.state.releases.v7 : router.state.releases.v6);
      }
      send(res, 404, { error: 'not found' });
    })().catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: String(err) });
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' }, () => {
      server.off('error', reject);
      const a = server.address();
      resolve({
        port: typeof a === 'object' && a ? a.port : 0,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
