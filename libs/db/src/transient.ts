/**
 * PostgreSQL errors after which the same transaction, run again, may succeed: the
 * connection was lost or refused (08*), the server shut the session down or is starting
 * (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now), or the
 * transaction lost a serialization race (40001, 40P01 deadlock). Node socket errors count
 * the same (ECONNRESET, ECONNREFUSED, EPIPE, ETIMEDOUT), and so does node-postgres' own
 * "Connection terminated" when the server closed the socket mid-query.
 */
export function isTransientDbError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : '';
    if (/^08/.test(code) || ['57P01', '57P02', '57P03', '40001', '40P01'].includes(code)) return true;
    if (['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH'].includes(code)) return true;
    const message = e instanceof Error ? e.message : '';
    // "timeout exceeded when trying to connect": the pool got no connection within its
    // connect timeout (a server that does not answer: failover, blackholed link); nothing ran
    // (ADR 0113).
    // "Query runner already released": TypeORM releases a query runner whose connection
    // emitted an error (terminated mid-transaction); the transaction is gone with it.
    if (
      /Connection terminated|terminating connection|connection is not open|Client has encountered a connection error|Query runner already released|timeout exceeded when trying to connect/i.test(
        message,
      )
    )
      return true;
    // TypeORM wraps the driver error (QueryFailedError.driverError).
    e =
      typeof e === 'object' && e !== null && 'driverError' in e
        ? e.driverError
        : e instanceof Error
          ? e.cause
          : undefined;
  }
  return false;
}
