/**
 * Why a relayed call failed, as the caller (api live calls, worker jobs) needs to decide:
 * - `site_offline`: no tunnel in the registry, or the gateway says the tunnel just went down
 * - `gateway_unreachable`: no link record for the gateway holding the tunnel, or it does not answer
 * - `gateway_stopping`: the gateway is draining (503): try again shortly
 * - `router_unreachable`, `router_login_failed`: tunnel up, the router's API does not take the call
 * - `router_error`: the router refused the command (`!trap`)
 * - `timeout`: no answer within the deadline (router or gateway); `aborted`: the caller gave up
 * - `rate_limited`: the gateway's per-site limits
 * - `bad_request`: the gateway refused the body (a bug on our side, or a bad command)
 * - `bad_response`, `bad_record`: an answer or a registry record that does not match its schema
 * - `unauthorized`: the gateway refused the link token (stale record during a gateway restart)
 */
export type RelayFailureCode =
  | 'site_offline'
  | 'gateway_unreachable'
  | 'gateway_stopping'
  | 'router_unreachable'
  | 'router_login_failed'
  | 'router_error'
  | 'timeout'
  | 'aborted'
  | 'rate_limited'
  | 'bad_request'
  | 'bad_response'
  | 'bad_record'
  | 'unauthorized';

/** The one error type the relay client throws. */
export class RelayClientError extends Error {
  constructor(
    readonly code: RelayFailureCode,
    message: string,
    /** HTTP status of the gateway's answer, when there was one. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'RelayClientError';
  }

  /** The router itself refused (a real failure of a job), as opposed to "cannot reach it now". */
  get routerRefused(): boolean {
    return this.code === 'router_error' || this.code === 'bad_request';
  }
}

/** Gateway -> api link failures: `status` is set when the control plane answered. */
export class LinkError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
  ) {
    super(message);
    this.name = 'LinkError';
  }
}
