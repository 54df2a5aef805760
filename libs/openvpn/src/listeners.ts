/**
 * Calls every listener of a set with `args` (over a copy, so a listener may unsubscribe), and
 * hands what one throws to `onError` instead of letting it break the caller or the others.
 */
export function notify<A extends unknown[]>(
  listeners: ReadonlySet<(...a: A) => void>,
  args: A,
  onError: ((err: Error) => void) | undefined,
): void {
  for (const l of [...listeners]) {
    try {
      l(...args);
    } catch (err) {
      onError?.(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
