/** Messages between the campaign and its routers child process (scripts/chaos/routers.ts). */

export interface RouterSpec {
  readonly site: string;
  readonly port?: number;
  readonly version: string;
  readonly latestVersion: string;
  readonly user: { name: string; password: string; group: string };
  readonly rebootDelayMs: number;
}

/** One command a router executed, from its own point of view. */
export interface Effect {
  seq: number;
  site: string;
  /** The API connection (one per client session). */
  session: number;
  command: string;
  args: Record<string, string>;
  mutating: boolean;
  /** Run by a script the router was executing on the same connection (/execute, reset's run-after-reset). */
  nested: boolean;
  start: number;
  end: number | null;
  outcome: 'open' | 'done' | 'trap';
  error?: string;
}

export interface RouterSnapshot {
  site: string;
  version: string;
  runningVersion: string;
  bootedAt: number;
  identity: string;
  dns: string;
  addressList: string[];
  users: string[];
}

export type RouterFault =
  { kind: 'reboot' } | { kind: 'latency'; ms: number } | { kind: 'drop' } | { kind: 'silent' } | { kind: 'heal' };

export type RoutersRequest =
  | { type: 'start'; id: number; routers: RouterSpec[] }
  | { type: 'effects'; id: number; since: number }
  | { type: 'snapshot'; id: number }
  | { type: 'fault'; id: number; site: string; fault: RouterFault }
  | { type: 'arm'; id: number; site: string; trigger: number; match: string }
  | { type: 'disarm'; id: number }
  | { type: 'ack'; trigger: number };

export type RoutersReply =
  | { type: 'reply'; id: number; body: unknown; error?: string }
  | { type: 'trigger'; id: number; site: string; command: string; at: number };
