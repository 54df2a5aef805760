import { backupHash, exportWithoutHeader, JOB_KINDS } from '@backplane/jobs';
import { describe, expect, it } from 'vitest';
import { assertRegistry, HANDLERS } from '../../apps/worker/src/jobs/registry';

describe('job registry', () => {
  it('the worker has exactly one handler per job name', () => {
    expect(Object.keys(HANDLERS).sort()).toEqual([...JOB_KINDS].sort());
    expect(() => assertRegistry(HANDLERS)).not.toThrow();
  });

  it('start-up fails naming a job without a handler or a handler without a job', () => {
    const { backup: _missing, ...rest } = HANDLERS;
    expect(() => assertRegistry(rest)).toThrow(/missing handlers \[backup\]/);
    expect(() => assertRegistry({ ...HANDLERS, 'wipe-router': () => Promise.resolve() })).toThrow(
      /handlers without a job name \[wipe-router\]/,
    );
  });
});

describe('backup deduplication key', () => {
  const v7 = (when: string) => `# ${when} by RouterOS 7.16\n# software id = ABCD-1234\n/ip dns\nset servers=9.9.9.9\n`;
  it('ignores the date header line only', () => {
    expect(backupHash(v7('2026-11-22 03:00:00'))).toBe(backupHash(v7('2026-11-23 03:00:00')));
    expect(backupHash(v7('2026-11-22 03:00:00'))).not.toBe(
      backupHash(v7('2026-11-22 03:00:00').replace('9.9.9.9', '1.1.1.1')),
    );
    expect(exportWithoutHeader('# nov/22/2026 03:00:00 by RouterOS 6.49.10\n/system identity\n')).toBe(
      '/system identity\n',
    );
  });
});
