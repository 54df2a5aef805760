/**
 * `/tool fetch` as a real HTTP/HTTPS client. `check-certificate=yes` verifies the server
 * against the router's trusted certificates (those imported with `/certificate import`)
 * and its name; `no` (the default) accepts any certificate, as RouterOS does.
 * Messages follow RouterOS (`failure: closing connection: <404 Not Found> 127.0.0.1:8080`).
 */
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { ScriptHost } from './host';
import type { Interpreter } from './interpreter';
import { ScriptRuntimeError, toStr, type Val } from './values';
import { parseDuration } from '../model/values';

const METHODS = ['get', 'post', 'put', 'delete', 'patch', 'head'];

interface Response {
  readonly status: number;
  readonly statusText: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
  readonly ms: number;
}

export async function toolFetch(
  host: ScriptHost,
  named: Map<string, Val>,
  pos: Val[],
  interp: Interpreter,
): Promise<Val> {
  const flags = new Set(pos.map(toStr));
  for (const [k, v] of named) if (v === '') flags.add(k);
  const get = (k: string): string | undefined =>
    named.has(k) && named.get(k) !== '' ? toStr(named.get(k)!) : undefined;
  const rawUrl = get('url');
  if (rawUrl === undefined) throw new ScriptRuntimeError('failure: url not specified');
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new ScriptRuntimeError('failure: invalid url');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ScriptRuntimeError(`failure: unsupported protocol ${url.protocol.replace(':', '')}`);
  }
  const method = (get('http-method') ?? 'get').toLowerCase();
  if (!METHODS.includes(method)) throw new ScriptRuntimeError('input does not match any value of http-method');
  const check = get('check-certificate') ?? 'no';
  if (!['yes', 'no', 'yes-without-crl'].includes(check)) {
    throw new ScriptRuntimeError('input does not match any value of check-certificate');
  }
  const output = get('output') ?? (get('keep-result') === 'no' ? 'none' : 'file');
  if (!['none', 'file', 'user', 'user-with-headers'].includes(output)) {
    throw new ScriptRuntimeError('input does not match any value of output');
  }
  const headers: OutgoingHttpHeaders = {};
  for (const field of (get('http-header-field') ?? '').split(',')) {
    const colon = field.indexOf(':');
    if (colon <= 0) continue;
    headers[field.slice(0, colon).trim()] = field.slice(colon + 1).trim();
  }
  const data = get('http-data');
  const body = data === undefined ? undefined : Buffer.from(data, 'latin1');
  if (body) {
    headers['content-length'] = body.length;
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
  }
  const user = get('user');
  if (user !== undefined) {
    const token = Buffer.from(`${user}:${get('password') ?? ''}`, 'latin1').toString('base64');
    headers['authorization'] = `Basic ${token}`;
  }
  const timeout = (parseDuration(get('idle-timeout') ?? '10s') ?? 10) * 1000;
  const target = `${url.hostname}:${url.port || (url.protocol === 'https:' ? 443 : 80)}`;

  const response = await new Promise<Response>((resolve, reject) => {
    const started = Date.now();
    const options = {
      method: method.toUpperCase(),
      headers,
      timeout,
      ...(interp.signal ? { signal: interp.signal } : {}),
      ...(url.protocol === 'https:'
        ? check === 'no'
          ? { rejectUnauthorized: false }
          : { rejectUnauthorized: true, ca: host.trustedPems() }
        : {}),
    };
    const onResponse = (res: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? '',
          headers: res.headers,
          body: Buffer.concat(chunks),
          ms: Date.now() - started,
        }),
      );
      res.on('error', reject);
    };
    const req =
      url.protocol === 'https:' ? httpsRequest(url, options, onResponse) : httpRequest(url, options, onResponse);
    req.on('timeout', () => req.destroy(new ScriptRuntimeError('failure: connection timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof ScriptRuntimeError) reject(err);
      else if (err.name === 'AbortError') reject(new ScriptRuntimeError('interrupted'));
      else if (err.code === 'ECONNREFUSED') reject(new ScriptRuntimeError('failure: connection refused'));
      else if (err.code?.startsWith('ERR_TLS') || /certificate|self.signed|issuer|altname/i.test(err.message)) {
        reject(new ScriptRuntimeError(`failure: SSL: ${err.message}`));
      } else reject(new ScriptRuntimeError(`failure: ${err.message}`));
    });
    if (body) req.write(body);
    req.end();
  });

  if (response.status >= 400) {
    throw new ScriptRuntimeError(`failure: closing connection: <${response.status} ${response.statusText}> ${target}`);
  }
  const content = response.body.toString('latin1');
  if (output === 'file') {
    const dst = get('dst-path') ?? (url.pathname.split('/').pop() || 'index.html');
    host.writeFile(dst, content);
  }
  const kib = String(Math.round(response.body.length / 1024));
  const result = new Map<string, Val>([
    ['status', 'finished'],
    ['downloaded', kib],
    ['total', kib],
    ['duration', `${Math.max(1, Math.round(response.ms / 1000))}s`],
  ]);
  if (output === 'user' || output === 'user-with-headers') result.set('data', content);
  if (output === 'user-with-headers') {
    result.set(
      'http-headers',
      Object.entries(response.headers)
        .map(([k, v]) => `${k}:${Array.isArray(v) ? v.join(',') : (v ?? '')}`)
        .join(';'),
    );
  }
  if (flags.has('as-value')) return result;
  interp.print(`      status: finished`);
  interp.print(`  downloaded: ${kib}KiB`);
  if (output === 'user') interp.print(`        data: ${content}`);
  return null;
}
