// Injected I/O faults through the one file-system interface (src/common/fault-fs.ts).
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/tmp.js';

const root = tempDir();
const fixture = (name: string) => path.join(__dirname, 'fixtures', name);

function runWithFaults(script: string, rules: unknown[], ...args: string[]): any {
  const stdout = execFileSync(process.execPath, [fixture(script), ...args], {
    env: { ...process.env, STEMEDB_FAULTS: JSON.stringify(rules) },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

describe('a failed fdatasync is sticky', () => {
  it('rejects the group and every later write with LEVEL_IO_ERROR, emits error, keeps serving reads', () => {
    const out = runWithFaults('sync-failure.mjs', [{ op: 'fdatasync', path: '\\.wal$', code: 'EIO', times: 1 }], path.join(root, 'sync'));
    expect(out.nonSyncBeforeFailure).toBe('resolved');
    expect(out.syncWrite).toEqual({ ok: false, code: 'LEVEL_IO_ERROR', cause: 'EIO' });
    // Issued in the same tick, it joined the failed group or came after it: never acknowledged.
    expect(out.writeIssuedAlongside).toMatchObject({ ok: false, code: 'LEVEL_IO_ERROR' });
    expect(out.laterWrite).toEqual({ ok: false, code: 'LEVEL_IO_ERROR', cause: 'EIO' });
    expect(out.laterBatch).toMatchObject({ ok: false, code: 'LEVEL_IO_ERROR' });
    expect(out.readA).toBe('1');
    expect(out.readASync).toBe('1');
    expect(out.readB).toBeUndefined();
    expect(out.errorEvents).toEqual(['LEVEL_IO_ERROR']);
    expect(out.writesFailed).toBe(true);
    expect(out.afterReopenA).toBe('1');
    expect(out.afterReopenSyncWrite).toBe('6');
  });

  it('an ENOSPC on the WAL write fails writes with cause ENOSPC and loses nothing acknowledged', () => {
    const out = runWithFaults('sync-failure.mjs', [{ op: 'write', path: '\\.wal$', code: 'ENOSPC', skip: 1, times: 1 }], path.join(root, 'nospace'));
    expect(out.nonSyncBeforeFailure).toBe('resolved');
    expect(out.syncWrite).toEqual({ ok: false, code: 'LEVEL_IO_ERROR', cause: 'ENOSPC' });
    expect(out.laterWrite).toMatchObject({ ok: false, code: 'LEVEL_IO_ERROR' });
    expect(out.readA).toBe('1');
    expect(out.afterReopenA).toBe('1');
  });
});
