/**
 * Command classes for relay metrics (bounded label values):
 * - `read`: `print`, `getall`, `get`, `export` (no change on the router)
 * - `write`: `set`, `add`, `remove`, `unset`, `enable`, `disable`, `move`, `comment`, `edit`
 * - `stream`: anything relayed over `/stream` (`monitor-traffic`, `/log/print follow`, `listen`)
 * - `reboot`: `/system/reboot`, `/system/shutdown`, `/system/reset-configuration`, package install
 * - `other`: the rest (`/system/backup/save`, `/import`, `/ping`, `/tool/fetch`, scripts…)
 */
export type CommandClass = 'read' | 'write' | 'stream' | 'reboot' | 'other';

export const COMMAND_CLASSES: readonly CommandClass[] = ['read', 'write', 'stream', 'reboot', 'other'];

const READ = new Set(['print', 'getall', 'get', 'export']);
const WRITE = new Set(['set', 'add', 'remove', 'unset', 'enable', 'disable', 'move', 'comment', 'edit']);
const REBOOT = new Set([
  '/system/reboot',
  '/system/shutdown',
  '/system/reset-configuration',
  '/system/package/update/install',
]);

export function commandClass(command: string, streaming = false): CommandClass {
  if (streaming) return 'stream';
  if (REBOOT.has(command)) return 'reboot';
  const verb = command.slice(command.lastIndexOf('/') + 1);
  if (READ.has(verb)) return 'read';
  if (WRITE.has(verb)) return 'write';
  return 'other';
}
