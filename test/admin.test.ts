// The operations surface the runbooks use: /metrics, /health, storage stats, manual compaction.
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createAdminServer, StemeDB } from '../dist/index.js';
import { tempDir } from './helpers/tmp.js';

const root = tempDir();

describe('admin endpoints', () => {
  it('serve the runbooks\' metric names, health, storage stats and compaction', async () => {
    const db = new StemeDB(path.join(root, 'admin'), { writeBufferSize: 64 * 1024 });
    await db.open();
    for (let round = 0; round < 3; round++) {
      await db.batch(Array.from({ length: 500 }, (_, i) => ({ type: 'put' as const, key: `k${i}`, value: `r${round}-${'x'.repeat(100)}` })));
      await db.flush();
    }
    // Reads of flushed data: the flushes warmed the shared tier, so these hit it.
    for (let i = 0; i < 500; i += 7) expect(await db.get(`k${i}`)).toBe(`r2-${'x'.repeat(100)}`);
    const server = await createAdminServer(db, { port: 0 });
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const metrics = await (await fetch(`${base}/metrics`)).text();
      const value = (line: RegExp) => Number(line.exec(metrics)?.[1] ?? NaN);
      expect(value(/^stemedb_cache_hits_total\{tier="shared"\} (\S+)$/m)).toBeGreaterThan(0);
      expect(value(/^stemedb_cache_tier_bytes\{tier="shared"\} (\S+)$/m)).toBeGreaterThan(0);
      expect(value(/^stemedb_cache_tier_bytes\{tier="local"\} (\S+)$/m)).toBeGreaterThanOrEqual(0);
      expect(value(/^stemedb_cache_misses_total (\S+)$/m)).toBeGreaterThanOrEqual(0);
      expect(value(/^stemedb_memtable_buffers_allocated (\S+)$/m)).toBeGreaterThanOrEqual(1);
      for (const name of ['stemedb_lsm_pending_compaction_bytes', 'stemedb_storage_write_amplification', 'stemedb_cache_memory_bytes', 'stemedb_index_memory_bytes', 'stemedb_lsm_compaction_duration_seconds_count', 'process_resident_memory_bytes']) {
        expect(metrics).toMatch(new RegExp(`^${name} [0-9.e+-]+$`, 'm'));
      }
      expect(metrics).toMatch(/^stemedb_storage_operation_errors_total\{operation="put"\} 0$/m);
      expect(metrics).toMatch(/^stemedb_sst_files\{level="0"\} \d+$/m);
      const amp = Number(/^stemedb_storage_write_amplification (\S+)$/m.exec(metrics)![1]);
      expect(amp).toBeGreaterThan(1);

      const health = await fetch(`${base}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok' });

      const stats = await (await fetch(`${base}/v1/admin/storage/stats`)).json();
      expect(stats.sst_file_count).toBeGreaterThan(0);
      expect(stats.total_bytes).toBeGreaterThan(0);
      expect(typeof stats.pending_compaction_bytes).toBe('number');
      expect(typeof stats.index_memory_bytes).toBe('number');
      expect(typeof stats.cache_memory_bytes).toBe('number');

      const compact = await fetch(`${base}/v1/admin/storage/compact`, { method: 'POST', body: '{"force":true}' });
      expect(compact.status).toBe(200);
      const result = await compact.json();
      expect(result.compacted).toBe(true);
      expect(result.after.total_bytes).toBeLessThan(result.before.total_bytes);
      expect(await db.get('k7')).toBe(`r2-${'x'.repeat(100)}`);

      expect((await fetch(`${base}/nope`)).status).toBe(404);
      await db.close();
      const closed = await fetch(`${base}/health`);
      expect(closed.status).toBe(503);
      expect((await fetch(`${base}/metrics`)).status).toBe(503);
    } finally {
      await new Promise((r) => server.close(r));
      if (db.status === 'open') await db.close();
    }
  });
});
