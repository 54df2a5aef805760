import { SQL, type Tx } from './tenancy';

/**
 * Runs one parameterized statement in a transaction and returns its rows. For repositories in
 * libs/db only: it is not exported from the lib's index, and a lint rule forbids `.query(` calls
 * outside libs/db (ADR 0030). Tests that set up or inspect rows on purpose import it by path.
 */
export function query<T = Record<string, unknown>>(tx: Tx, sql: string, params?: readonly unknown[]): Promise<T[]> {
  return tx[SQL]<T>(sql, params);
}
