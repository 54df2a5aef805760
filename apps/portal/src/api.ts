/**
 * The one way the portal talks to the control plane.
 *
 * Tokens: the access token lives only in this module's memory (never in storage, never in the
 * DOM), so a reload or a new tab needs the refresh token. The refresh token is kept in
 * `sessionStorage`: scoped to this tab and this origin, gone when the tab closes, never sent
 * automatically like a cookie would be (so no CSRF), and rotated by the api on every use
 * (reuse of an old one revokes the whole session). Refreshes are single-flight so two
 * requests that both see a 401 do not present the same refresh token twice. The api serves the
 * portal with a strict Content-Security-Policy (scripts only from its own origin), which is what
 * keeps injected script from reading the token in the first place.
 */

import type { paths } from './generated/openapi';

/*
 * The api's types come from its OpenAPI document (`npm run portal:api` regenerates
 * ./generated/openapi.d.ts; a test fails when it is stale), never copied by hand.
 */
type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
export type ApiPath = keyof paths;
type Operation<P extends ApiPath, M extends Method> = NonNullable<paths[P][M]>;
type JsonOf<R> = R extends { content: { 'application/json': infer B } } ? B : never;
/** The JSON answer (200 or 201) of an operation. */
export type ResponseOf<P extends ApiPath, M extends Method> =
  Operation<P, M> extends { responses: infer R } ? JsonOf<R[Extract<keyof R, 200 | 201>]> : never;
/** The JSON body an operation takes. */
export type BodyOf<P extends ApiPath, M extends Method> =
  Operation<P, M> extends { requestBody?: infer B } ? JsonOf<NonNullable<B>> : never;
type ParamsOf<P extends ApiPath, M extends Method> = Operation<P, M> extends { parameters: infer Q } ? Q : never;
type ItemOf<P extends ApiPath> = ResponseOf<P, 'get'> extends { items: (infer I)[] } ? I : never;

export type Me = ResponseOf<'/api/v1/me', 'get'>;
export type TenantRef = Me['tenants'][number];
export type Role = TenantRef['role'];
export const ROLE_RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2, owner: 3 };
export const ROLES: readonly Role[] = ['owner', 'admin', 'operator', 'viewer'];

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
export type Site = ResponseOf<'/api/v1/tenants/{tenantId}/sites/{siteId}', 'get'>;
/**
 * How the fleet counts a site: online = tunnel up; degraded = no tunnel but its router still
 * polls; offline = seen before, neither; pending = never seen.
 */
export type FleetHealth = Site['health'];
export type SiteHealth = ResponseOf<'/api/v1/tenants/{tenantId}/sites/{siteId}/health', 'get'>;
export type Member = ItemOf<'/api/v1/tenants/{tenantId}/members'>;
export type ApiKey = ItemOf<'/api/v1/tenants/{tenantId}/api-keys'>;
export type AuditEntry = ItemOf<'/api/v1/tenants/{tenantId}/audit-log'>;
export type Region = ItemOf<'/api/v1/regions'>;
export type Gateway = ItemOf<'/api/v1/gateways'>;
export type TunnelEvent = ItemOf<'/api/v1/tenants/{tenantId}/sites/{siteId}/tunnel/events'>;
export type Job = ResponseOf<'/api/v1/tenants/{tenantId}/jobs/{jobId}', 'get'>;
export type JobStep = Job['steps'][number];
export type JobBatch = ResponseOf<'/api/v1/tenants/{tenantId}/job-batches/{batchId}', 'get'>;
export type FleetSummary = ResponseOf<'/api/v1/tenants/{tenantId}/sites/summary', 'get'>;
export type AlertItem = ItemOf<'/api/v1/tenants/{tenantId}/alerts'>;
export type AlertRule = ItemOf<'/api/v1/tenants/{tenantId}/alert-rules'>;
export type Channel = ItemOf<'/api/v1/tenants/{tenantId}/channels'>;
export type Delivery = ItemOf<'/api/v1/tenants/{tenantId}/channels/{channelId}/deliveries'>;
type TokenPair = ResponseOf<'/api/v1/auth/refresh', 'post'>;
export type LoginResult = { kind: 'signed-in' } | { kind: 'mfa'; mfaToken: string };

/** An error answer of the api: `{ error: { code, message, requestId, details? } }`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId: string | null,
    readonly details: { path?: string; message: string }[] = [],
  ) {
    super(message);
  }
  /** For 503s from live routes: site_offline, gateway_unreachable, … */
  get reason(): string | undefined {
    return this.details.find((d) => d.path === 'reason')?.message;
  }
}

const REFRESH_KEY = 'backplane.refresh';
let accessToken: string | null = null;
let refreshing: Promise<boolean> | null = null;
let onSignedOut: (() => void) | null = null;
const tokenListeners = new Set<(token: string) => void>();

function store(pair: TokenPair): void {
  accessToken = pair.accessToken;
  sessionStorage.setItem(REFRESH_KEY, pair.refreshToken);
  for (const l of tokenListeners) l(pair.accessToken);
}

/**
 * The current access token, refreshed first when there is none yet (after a reload). For the
 * realtime socket's handshake, which authenticates with the same token as the REST calls.
 */
export async function currentAccessToken(): Promise<string | null> {
  if (!accessToken && sessionStorage.getItem(REFRESH_KEY)) await refresh();
  return accessToken;
}

/** Called with every new access token (sign-in, refresh): the realtime socket reconnects with it. */
export function onAccessToken(fn: (token: string) => void): () => void {
  tokenListeners.add(fn);
  return () => tokenListeners.delete(fn);
}

function forget(): void {
  accessToken = null;
  sessionStorage.removeItem(REFRESH_KEY);
}

export function hasSession(): boolean {
  return accessToken !== null || sessionStorage.getItem(REFRESH_KEY) !== null;
}

/** Called when the session ends without the user asking (refresh refused). */
export function setSignedOutHandler(fn: () => void): void {
  onSignedOut = fn;
}

async function toError(res: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    // not JSON
  }
  const e = (body as { error?: { code?: string; message?: string; requestId?: string; details?: [] } } | null)?.error;
  return new ApiError(
    res.status,
    e?.code ?? 'http_' + String(res.status),
    e?.message ?? res.statusText,
    e?.requestId ?? res.headers.get('x-request-id'),
    e?.details ?? [],
  );
}

/** A sign-in request (login, MFA, refresh): a JSON POST without a bearer token, never retried. */
function postSignIn<P extends ApiPath>(path: P, body: BodyOf<P, 'post'>): Promise<Response> {
  return fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

async function refreshOnce(): Promise<boolean> {
  const token = sessionStorage.getItem(REFRESH_KEY);
  if (!token) return false;
  const res = await postSignIn('/api/v1/auth/refresh', { refreshToken: token });
  if (!res.ok) {
    forget();
    return false;
  }
  store((await res.json()) as TokenPair);
  return true;
}

/** Trades the refresh token for a new pair; concurrent callers share one request. */
export function refresh(): Promise<boolean> {
  refreshing ??= refreshOnce().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined | null>;
  signal?: AbortSignal;
}

export async function api<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(opts.query ?? {}))
    if (v !== undefined && v !== null && v !== '') qs.set(k, String(v));
  const url = `/api/v1${path}${qs.size ? `?${qs.toString()}` : ''}`;
  const send = () => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (accessToken) headers['authorization'] = `Bearer ${accessToken}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    return fetch(url, {
      method,
      headers,
      body: opts.body === undefined ? null : JSON.stringify(opts.body),
      signal: opts.signal ?? null,
    });
  };
  if (!accessToken && sessionStorage.getItem(REFRESH_KEY)) await refresh();
  let res = await send();
  if (res.status === 401 && sessionStorage.getItem(REFRESH_KEY)) {
    if (await refresh()) res = await send();
    else onSignedOut?.();
  }
  if (!res.ok) throw await toError(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

type PathParams<P extends ApiPath, M extends Method> = ParamsOf<P, M> extends { path: infer X } ? X : never;
type QueryParams<P extends ApiPath, M extends Method> = ParamsOf<P, M> extends { query?: infer Q } ? Q : never;

/** What a typed call takes: the path's `{params}`, the query and the body its operation declares. */
export type CallOptions<P extends ApiPath, M extends Method> = {
  signal?: AbortSignal;
} & ([PathParams<P, M>] extends [never] ? { path?: never } : { path: PathParams<P, M> }) &
  ([NonNullable<QueryParams<P, M>>] extends [never] ? { query?: never } : { query?: QueryParams<P, M> }) &
  ([BodyOf<P, M>] extends [never] ? { body?: never } : { body: BodyOf<P, M> });

/**
 * A typed request: the path is one of the OpenAPI document's (with `{params}`), and the
 * body and the answer are the types generated from it. Same session handling as `api()`.
 *
 *   const site = await call('get', '/api/v1/tenants/{tenantId}/sites/{siteId}', { path: { tenantId, siteId } });
 */
export function call<P extends ApiPath, M extends Method>(
  method: M,
  path: P,
  ...[opts]: Partial<CallOptions<P, M>> extends CallOptions<P, M> ? [CallOptions<P, M>?] : [CallOptions<P, M>]
): Promise<ResponseOf<P, M>> {
  const o = (opts ?? {}) as { path?: Record<string, string>; query?: RequestOptions['query']; body?: unknown };
  const url = (path as string)
    .replace(/^\/api\/v1/, '')
    .replace(/\{(\w+)\}/g, (_, k: string) => encodeURIComponent(o.path?.[k] ?? ''));
  return api<ResponseOf<P, M>>(method.toUpperCase(), url, {
    ...(o.query ? { query: o.query } : {}),
    ...(o.body !== undefined ? { body: o.body } : {}),
    ...(opts?.signal ? { signal: opts.signal } : {}),
  });
}

export async function login(email: string, password: string): Promise<LoginResult> {
  const res = await postSignIn('/api/v1/auth/login', { email, password });
  if (!res.ok) throw await toError(res);
  const body = (await res.json()) as ResponseOf<'/api/v1/auth/login', 'post'>;
  if ('mfaRequired' in body) return { kind: 'mfa', mfaToken: body.mfaToken };
  store(body);
  return { kind: 'signed-in' };
}

export async function loginMfa(mfaToken: string, code: string): Promise<void> {
  const res = await postSignIn('/api/v1/auth/login/mfa', { mfaToken, code });
  if (!res.ok) throw await toError(res);
  store((await res.json()) as TokenPair);
}

export async function logout(): Promise<void> {
  try {
    if (hasSession()) await api('POST', '/auth/logout');
  } catch {
    // the session may already be gone; forget it locally anyway
  } finally {
    forget();
  }
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError && e.code === 'mfa_required')
    return 'This tenant requires two-factor sign-in: turn it on under "Two-factor" at the top right, then try again.';
  if (e instanceof ApiError) return e.reason ? `${e.message} (${e.reason})` : e.message;
  return e instanceof Error ? e.message : String(e);
}
