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

describe('a flush that hits ENOSPC', () => {
  it('removes its partial output, leaves nothing the MANIFEST does not name, and succeeds once space returns', () => {
    const out = runWithFaults('flush-enospc.mjs', [{ op: 'write', path: '\\.sst$', code: 'ENOSPC', times: 2 }], path.join(root, 'flush-enospc'));
    expect(out.firstFlush).toEqual({ code: 'LEVEL_IO_ERROR', cause: 'ENOSPC' });
    expect(out.sstFilesAfterFailure).toEqual([]);
    expect(out.readDuringFailure).toBe(`v7-${'x'.repeat(100)}`);
    expect(out.flushedLater).toBe(true);
    expect(out.sstFiles).toBeGreaterThan(0);
    expect(out.verify.ok).toBe(true);
    expect(out.verify.problems).toEqual([]);
    expect(out.afterReopen).toBe(`v199-${'x'.repeat(100)}`);
  });
});

describe('a real full disk (tmpfs)', () => {
  const isRoot = process.getuid?.() === 0;
  if (!isRoot) console.log('skipping the tmpfs disk-full test: mounting tmpfs needs root');
  it.skipIf(!isRoot)('writes fail with ENOSPC, nothing acknowledged is lost, and a reopen after freeing space recovers', async () => {
    const { execFileSync } = await import('node:child_process');
    const fs = await import('node:fs');
    const mountPoint = path.join(root, 'tmpfs');
    fs.mkdirSync(mountPoint);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint]);
    try {
      const ballast = path.join(mountPoint, 'ballast');
      fs.writeFileSync(ballast, Buffer.alloc(1024 * 1024));
      const location = path.join(mountPoint, 'db');
      const run = (...args: string[]) => JSON.parse(execFileSync(process.execPath, [fixture('disk-full.mjs'), ...args], { encoding: 'utf8', timeout: 120_000 }).trim().split('\n').pop()!);
      const filled = run('fill', location);
      expect(filled.failure).toEqual({ code: 'LEVEL_IO_ERROR', cause: 'ENOSPC' });
      expect(filled.acknowledged).toBeGreaterThan(100);
      expect(filled.readFirst).toBe(true);
      expect(filled.readLast).toBe(true);
      expect(filled.laterWrite).toBe('LEVEL_IO_ERROR');
      fs.rmSync(ballast);
      const reopened = run('reopen', location, String(filled.acknowledged));
      expect(reopened.present).toBe(filled.acknowledged);
      expect(reopened.newWrite).toBe('ok');
      expect(reopened.newRead).toBe('y');
    } finally {
      execFileSync('umount', ['-l', mountPoint]);
    }
  });
});
