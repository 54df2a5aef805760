import { createHash } from 'node:crypto';

/**
 * An export without its first comment line (`# 2026-11-22 12:00:00 by RouterOS 7.16` /
 * `# nov/22/2026 12:00:00 by RouterOS 6.49`), which changes on every export even when
 * nothing else did.
 */
export function exportWithoutHeader(text: string): string {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const i = lines.findIndex((l) => / by RouterOS /.test(l) && l.startsWith('#'));
  if (i >= 0 && i < 3) lines.splice(i, 1);
  return lines.join('\n');
}

/** The deduplication key of a backup: SHA-256 of the export without its date line. */
export function backupHash(text: string): string {
  return createHash('sha256').update(exportWithoutHeader(text)).digest('hex');
}
