import { useCallback, useEffect, useRef, useState } from 'react';
import { errorText } from './api';

export interface Loaded<T> {
  data: T | undefined;
  error: string | null;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` when `deps` change (aborting the previous run) and on `reload()`. */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: readonly unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data: T | undefined; error: string | null; loading: boolean }>({
    data: undefined,
    error: null,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    const ac = new AbortController();
    setState((s) => ({ ...s, loading: true, error: null }));
    loadRef.current(ac.signal).then(
      (data) => !ac.signal.aborted && setState({ data, error: null, loading: false }),
      (e: unknown) => !ac.signal.aborted && setState((s) => ({ ...s, error: errorText(e), loading: false })),
    );
    return () => ac.abort();
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

export function ago(iso: string | null): string {
  if (!iso) return 'never';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function when(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString() : '—';
}

export type SiteState = 'online' | 'offline' | 'pending';

/** Pending: created but its router has never reported in (not onboarded yet). */
export function siteState(s: { status: { online: boolean; lastSeenAt: string | null } }): SiteState {
  if (s.status.online) return 'online';
  return s.status.lastSeenAt ? 'offline' : 'pending';
}

export const STATE_COLOR: Record<SiteState | 'degraded', string> = {
  online: 'teal',
  degraded: 'orange',
  offline: 'red',
  pending: 'gray',
};

/**
 * A button's or form's action: `busy` while it runs, and the error text (cleared when it runs
 * again). `onError` sees the text too, e.g. to reset a field.
 */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = useCallback(async (fn: () => Promise<unknown>, onError?: (text: string) => void) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (e) {
      const text = errorText(e);
      setError(text);
      onError?.(text);
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, setError, run };
}
