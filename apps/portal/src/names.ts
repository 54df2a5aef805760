import { useEffect, useState } from 'react';
import { call } from './api';

/**
 * Region and gateway names. Only platform operators may list regions and gateways (the api
 * refuses anyone else), so tenants see a short id instead.
 */
export function usePlatformNames(platformOperator: boolean) {
  const [names, setNames] = useState<{ regions: Map<string, string>; gateways: Map<string, string> }>({
    regions: new Map(),
    gateways: new Map(),
  });
  useEffect(() => {
    if (!platformOperator) return;
    const ac = new AbortController();
    Promise.all([
      call('get', '/api/v1/regions', { query: { limit: 200 }, signal: ac.signal }),
      call('get', '/api/v1/gateways', { signal: ac.signal }),
    ]).then(
      ([r, g]) =>
        setNames({
          regions: new Map(r.items.map((x) => [x.id, x.name])),
          gateways: new Map(g.items.map((x) => [x.id, x.name])),
        }),
      () => undefined,
    );
    return () => ac.abort();
  }, [platformOperator]);
  return {
    region: (id: string | null) => (!id ? 'unassigned' : (names.regions.get(id) ?? `region ${id.slice(0, 8)}`)),
    gateway: (id: string | null) => (!id ? '—' : (names.gateways.get(id) ?? `gateway ${id.slice(0, 8)}`)),
  };
}
