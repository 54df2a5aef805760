/**
 * Who may log in, independent of the transport: API (plain or MD5 challenge), and later
 * REST (`rest-api` policy on v7) and SSH (`ssh`). A session shows in /user active and
 * /log like on a router.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Session } from './engine';
import type { RouterState } from './state';
import { POLICIES, type Policy } from './types';
import { inPrefix, parseIp } from './values';

export interface Credentials {
  readonly name: string;
  /** Plain password (API 6.43+, REST, SSH)... */
  readonly password?: string;
  /** ...or the MD5 challenge response with the challenge that was sent. */
  readonly response?: { readonly value: string; readonly challenge: Buffer };
}

export interface LoginContext {
  readonly remoteAddress: string;
  /** `api`, `api-ssl`, `rest`, `ssh`: shown in /user active and /log. */
  readonly via: string;
  /** The group policy this way in needs (`api` for the API). */
  readonly policy: Policy;
}

/** `00` + md5(0x00 + password + challenge), the pre-6.43 login response. */
export function md5Response(password: string, challenge: Buffer): string {
  const hash = createHash('md5')
    .update(Buffer.from([0]))
    .update(Buffer.from(password, 'latin1'))
    .update(challenge)
    .digest('hex');
  return `00${hash}`;
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The session if the user exists, is enabled, knows the password, may come from there and has the policy. */
export function authenticate(state: RouterState, creds: Credentials, ctx: LoginContext): Session | undefined {
  const user = state.find('user', { name: creds.name });
  let ok = false;
  if (user) {
    const stored = user.values['password'] ?? '';
    if (creds.response) {
      ok = sameBytes(Buffer.from(md5Response(stored, creds.response.challenge)), Buffer.from(creds.response.value));
    } else if (creds.password !== undefined) {
      ok = sameBytes(Buffer.from(stored, 'latin1'), Buffer.from(creds.password, 'latin1'));
    }
  }
  if (!user || !ok || user.values['disabled'] === 'true') return undefined;
  const group = state.find('user/group', { name: user.values['group'] ?? '' });
  const policies = new Set(
    (group?.values['policy'] ?? '').split(',').filter((p): p is Policy => (POLICIES as readonly string[]).includes(p)),
  );
  const addr = parseIp(ctx.remoteAddress);
  const prefixes = (user.values['address'] ?? '').split(',').filter(Boolean);
  const allowed = prefixes.length === 0 || (addr !== undefined && prefixes.some((p) => inPrefix(addr, p)));
  if (!policies.has(ctx.policy) || !allowed) return undefined;
  return { user: creds.name, group: group?.values['name'] ?? '', policies, address: ctx.remoteAddress, via: ctx.via };
}

/** Records a login (/user active, last-logged-in, /log); returns the /user active id. */
export function openSession(state: RouterState, session: Session): number {
  const c = state.clock();
  const when = `${c.date} ${c.time}`;
  const user = state.find('user', { name: session.user });
  if (user) state.update('user', user, { 'last-logged-in': when });
  const active = state.insert('user/active', {
    when,
    name: session.user,
    address: session.address,
    via: session.via,
    group: session.group,
  });
  state.log('system,info,account', `user ${session.user} logged in from ${session.address} via ${session.via}`);
  return active.id;
}

export function closeSession(state: RouterState, session: Session, activeId: number): void {
  state.remove('user/active', activeId);
  state.log('system,info,account', `user ${session.user} logged out from ${session.address} via ${session.via}`);
}

export function loginFailed(state: RouterState, name: string, ctx: Omit<LoginContext, 'policy'>): void {
  state.log('system,error,critical', `login failure for user ${name} from ${ctx.remoteAddress} via ${ctx.via}`);
}
