import { createContext, useContext } from 'react';
import { ROLE_RANK, type Me, type Role, type TenantRef } from './api';

export interface Session {
  me: Me;
  tenant: TenantRef;
  /** True when the signed-in role in this tenant is at least `role`. */
  can: (role: Role) => boolean;
  reloadMe: () => Promise<void>;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in page');
  return s;
}

export function sessionFor(me: Me, tenant: TenantRef, reloadMe: () => Promise<void>): Session {
  return { me, tenant, reloadMe, can: (role) => ROLE_RANK[tenant.role] >= ROLE_RANK[role] };
}

export function tenantPath(t: TenantRef, rest = ''): string {
  return `/t/${encodeURIComponent(t.slug)}${rest}`;
}
