import type { DataSource, QueryRunner } from 'typeorm';

/** The role every app transaction runs as; it owns nothing, so RLS policies bind it. */
export const APP_DB_ROLE = 'backplane_app';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Proof that the caller was authenticated for one tenant. Every tenant repository method
 * takes a {@link TenantTx}, and the only way to get one is `Database.inTenant(scope)`,
 * so tenant data cannot be queried without a scope. The API's auth guard mints scopes
 * after it checked a membership or an API key; nothing else should.
 */
export class TenantScope {
  private constructor(readonly tenantId: string) {}

  /** For the authentication guard (after a membership or API key check) and tests only. */
  static authenticated(tenantId: string): TenantScope {
    if (!UUID.test(tenantId)) throw new Error('tenant id must be a uuid');
    return new TenantScope(tenantId.toLowerCase());
  }
}

/** Runs one parameterized statement and returns its rows (for RETURNING, UPDATE and DELETE too). */
export type QueryFn = <T = Record<string, unknown>>(sql: string, params?: readonly unknown[]) => Promise<T[]>;

/**
 * The key under which a transaction carries its query function. Not exported from the lib's
 * index: only repositories in libs/db (through `query()` in ./sql) run SQL (ADR 0030).
 */
export const SQL: unique symbol = Symbol('backplane.sql');

/** One transaction, as the app role. Opaque outside libs/db: pass it to repository methods. */
export interface Tx {
  readonly [SQL]: QueryFn;
}

/** A transaction bound to one tenant: `app.tenant_id` is set and RLS applies. */
export interface TenantTx extends Tx {
  readonly tenantId: string;
  readonly kind: 'tenant';
}

/** A transaction for platform tables (users, tenants, regions...): no tenant rows visible. */
export interface PlatformTx extends Tx {
  readonly kind: 'platform';
}

function txOf(runner: QueryRunner): Tx {
  return {
    // Structured results: rows for every command (TypeORM's plain query() returns
    // [rows, count] for UPDATE and DELETE).
    [SQL]: async <T>(sql: string, params: readonly unknown[] = []) =>
      (await runner.query(sql, [...params], true)).records as T[],
  };
}

/**
 * The one way the app reaches PostgreSQL. Each call is one transaction that first drops
 * to the non-owner role (`SET LOCAL ROLE` semantics via `set_config('role', ..., true)`,
 * so it ends with the transaction and never leaks to the next user of the pooled
 * connection) and sets the tenant.
 */
export class Database {
  constructor(readonly dataSource: DataSource) {}

  inTenant<T>(scope: TenantScope, fn: (tx: TenantTx) => Promise<T>): Promise<T> {
    return this.run(scope.tenantId, (runner) => fn({ ...txOf(runner), tenantId: scope.tenantId, kind: 'tenant' }));
  }

  inPlatform<T>(fn: (tx: PlatformTx) => Promise<T>): Promise<T> {
    return this.run('', (runner) => fn({ ...txOf(runner), kind: 'platform' }));
  }

  private async run<T>(tenantId: string, fn: (runner: QueryRunner) => Promise<T>): Promise<T> {
    // The tenant id is '' or a UUID checked by TenantScope, so it can be inlined: BEGIN and
    // the role and tenant settings then travel in one round trip (simple query protocol).
    if (tenantId !== '' && !UUID.test(tenantId)) throw new Error('tenant id must be a uuid');
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.query(
        `BEGIN; SELECT set_config('role', '${APP_DB_ROLE}', true), set_config('app.tenant_id', '${tenantId}', true)`,
      );
      const result = await fn(runner);
      await runner.query('COMMIT');
      return result;
    } catch (err) {
      // A dead connection fails here too; pg's pool then drops it instead of reusing it.
      await runner.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      await runner.release();
    }
  }

  /**
   * One tenant transaction in ONE round trip (the job runner's hot path, issue 19): `fn`
   * issues its statements without waiting for one another's results (usually just one); they
   * travel with the role and tenant settings as one simple query, which PostgreSQL runs as one
   * implicit transaction (an error anywhere rolls all of it back). A simple query takes no
   * parameters, so the values are inlined as literals: strings, finite numbers, booleans, dates
   * and null only — anything else throws before a byte is sent. A statement issued after the
   * others were sent (after awaiting a result) is refused: use `inTenant` for those.
   */
  async inTenantOneTrip<T>(scope: TenantScope, fn: (tx: TenantTx) => Promise<T>): Promise<T> {
    const tenantId = scope.tenantId;
    if (!UUID.test(tenantId)) throw new Error('tenant id must be a uuid');
    const pending: { sql: string; resolve: (rows: unknown[]) => void; reject: (err: unknown) => void }[] = [];
    let sent = false;
    const tx: TenantTx = {
      [SQL]: <R>(sql: string, params: readonly unknown[] = []) => {
        if (sent) return Promise.reject(new Error('inTenantOneTrip: every statement must be issued before any result'));
        let text: string;
        try {
          text = inlineParams(sql, params);
        } catch (err) {
          return Promise.reject(err instanceof Error ? err : new Error(String(err)));
        }
        const rows = new Promise<R[]>((resolve, reject) =>
          pending.push({ sql: text, resolve: resolve as (rows: unknown[]) => void, reject }),
        );
        // A failed trip rejects every statement; `fn` may await only the first of them.
        rows.catch(() => undefined);
        return rows;
      },
      tenantId,
      kind: 'tenant',
    };
    const result = fn(tx);
    result.catch(() => undefined); // handled by the caller, who gets `result`; not unhandled meanwhile
    // Whatever `fn` issues before it waits for a result is in `pending` after this turn.
    await new Promise<void>((r) => setImmediate(r));
    sent = true;
    if (pending.length === 0) return result;
    const text = [
      `SELECT set_config('role', '${APP_DB_ROLE}', true), set_config('app.tenant_id', '${tenantId}', true), ` +
        `set_config('standard_conforming_strings', 'on', true)`,
      ...pending.map((p) => p.sql),
    ].join(';\n');
    const runner = this.dataSource.createQueryRunner();
    try {
      const conn = (await runner.connect()) as { query(text: string): Promise<unknown> };
      const res = await conn.query(text);
      const results = (Array.isArray(res) ? res : [res]) as { rows?: unknown[] }[];
      pending.forEach((p, i) => p.resolve(results[i + 1]?.rows ?? []));
    } catch (err) {
      // As in `run`: a dead connection fails this too, and the pool then drops it.
      await runner.query('ROLLBACK').catch(() => undefined);
      for (const p of pending) p.reject(err);
    } finally {
      await runner.release();
    }
    return result;
  }

  /**
   * Switches an open platform transaction to one tenant (creating a tenant and its first
   * owner in one transaction). Needs a scope like every tenant access.
   */
  async enterTenant(tx: PlatformTx, scope: TenantScope): Promise<TenantTx> {
    await tx[SQL](`SELECT set_config('app.tenant_id', $1, true)`, [scope.tenantId]);
    return {
      [SQL]: tx[SQL],
      tenantId: scope.tenantId,
      kind: 'tenant',
    };
  }
}

/** A value as an SQL literal for a simple query (see `inTenantOneTrip`). */
export function sqlLiteral(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error('sqlLiteral: not a finite number');
    return v < 0 ? `(${v})` : String(v);
  }
  if (v instanceof Date) return sqlLiteral(v.toISOString());
  if (typeof v === 'string') {
    if (v.includes('\0')) throw new Error('sqlLiteral: NUL in a string');
    return `'${v.replace(/'/g, "''")}'`;
  }
  throw new Error(`sqlLiteral: a ${typeof v} cannot be inlined (strings, numbers, booleans, dates, null)`);
}

/** `$n` placeholders replaced by their values as literals (placeholders never appear inside quotes in our SQL). */
function inlineParams(sql: string, params: readonly unknown[]): string {
  return sql.replace(/\$(\d+)/g, (_m, n: string) => {
    const i = Number(n) - 1;
    if (i < 0 || i >= params.length) throw new Error(`inlineParams: no value for $${n}`);
    return sqlLiteral(params[i]);
  });
}
