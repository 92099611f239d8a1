// Threads: the caller's (main) thread. The operations surface the runbooks expect: Prometheus
// metrics and admin endpoints over HTTP, built on db.stats(). Opt-in: nothing listens unless
// the application calls createAdminServer().
//
//   GET  /metrics                       Prometheus text exposition (runbook metric names)
//   GET  /health                        200 when open and accepting writes, else 503
//   GET  /v1/admin/storage/stats        storage stats as JSON (snake_case, as the runbooks' jq reads)
//   POST /v1/admin/storage/compact      full manual compaction (also /v1/admin/compact)

import * as http from 'node:http';
import type { StemeDB } from './db.js';

type Stats = Record<string, any>;

function gauge(lines: string[], name: string, help: string, value: number, type: 'gauge' | 'counter' = 'gauge'): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${Number.isFinite(value) ? value : 0}`);
}

/** Prometheus text exposition of a database's stats, with the runbooks' metric names. */
export function prometheusMetrics(db: StemeDB<any, any>): string {
  const s: Stats = db.stats();
  const lines: string[] = [];
  gauge(lines, 'stemedb_lsm_pending_compaction_bytes', 'Bytes compaction must rewrite to bring every level under its target.', s.pendingCompactionBytes);
  gauge(lines, 'stemedb_storage_write_amplification', 'Bytes written to disk per user byte written since open.', s.writeAmplification);
  gauge(lines, 'stemedb_cache_memory_bytes', 'Block cache bytes in use.', s.blockCacheBytes);
  gauge(lines, 'stemedb_cache_size_bytes', 'Block cache capacity.', s.blockCacheCapacityBytes);
  lines.push('# HELP stemedb_cache_tier_bytes Block cache bytes in use per tier (local: decoded blocks on the caller\'s thread; shared: shared memory).', '# TYPE stemedb_cache_tier_bytes gauge');
  lines.push(`stemedb_cache_tier_bytes{tier="local"} ${s.blockCacheLocalBytes}`, `stemedb_cache_tier_bytes{tier="shared"} ${s.blockCacheSharedBytes}`);
  lines.push('# HELP stemedb_cache_hits_total Block cache hits per tier.', '# TYPE stemedb_cache_hits_total counter');
  lines.push(`stemedb_cache_hits_total{tier="local"} ${s.blockCacheLocalHits}`, `stemedb_cache_hits_total{tier="shared"} ${s.blockCacheSharedHits}`);
  gauge(lines, 'stemedb_cache_misses_total', 'Block reads that went to disk.', s.blockCacheMisses, 'counter');
  gauge(lines, 'stemedb_memtable_buffers_allocated', 'Memtable buffers allocated since open (reused buffers are not counted; a climb means readers pin old snapshots).', s.memtableBuffersAllocated);
  gauge(lines, 'stemedb_index_memory_bytes', 'Memtable arena bytes in use (active and immutable).', s.memtableActiveBytes + s.memtableImmutableBytes);
  lines.push('# HELP stemedb_storage_operation_errors_total Failed storage operations by kind.', '# TYPE stemedb_storage_operation_errors_total counter');
  for (const [operation, count] of Object.entries(s.storageOperationErrors as Record<string, number>)) {
    lines.push(`stemedb_storage_operation_errors_total{operation="${operation}"} ${count}`);
  }
  lines.push('# HELP stemedb_lsm_compaction_duration_seconds Compaction durations.', '# TYPE stemedb_lsm_compaction_duration_seconds summary');
  lines.push(`stemedb_lsm_compaction_duration_seconds_sum ${s.compactionMillisTotal / 1000}`, `stemedb_lsm_compaction_duration_seconds_count ${s.compactions}`);
  lines.push('# HELP stemedb_sst_files SST files per level.', '# TYPE stemedb_sst_files gauge');
  for (const l of s.levels) lines.push(`stemedb_sst_files{level="${l.level}"} ${l.fileCount}`);
  lines.push('# HELP stemedb_sst_bytes SST bytes per level.', '# TYPE stemedb_sst_bytes gauge');
  for (const l of s.levels) lines.push(`stemedb_sst_bytes{level="${l.level}"} ${l.bytes}`);
  gauge(lines, 'stemedb_wal_bytes_written_total', 'WAL bytes written since open.', s.walBytesWritten, 'counter');
  gauge(lines, 'stemedb_wal_syncs_total', 'WAL fdatasyncs since open.', s.walSyncs, 'counter');
  gauge(lines, 'stemedb_compactions_total', 'Compactions completed since open.', s.compactions, 'counter');
  gauge(lines, 'stemedb_write_stalls_total', 'Writes held at a hard limit until compaction caught up.', s.stallCount, 'counter');
  gauge(lines, 'stemedb_write_slowdowns_total', 'Writes delayed at a soft limit.', s.slowdownCount, 'counter');
  gauge(lines, 'stemedb_write_stall_seconds_total', 'Time writers spent waiting on stalls, summed over writers.', s.stallMillis / 1000, 'counter');
  gauge(lines, 'stemedb_writes_failed', '1 after a failed WAL write or fsync (reopen to recover).', s.writesFailed ? 1 : 0);
  gauge(lines, 'process_resident_memory_bytes', 'Resident memory of this process.', process.memoryUsage().rss);
  return lines.join('\n') + '\n';
}

/** The storage stats the runbooks read with jq, in their snake_case names. */
export function storageStats(db: StemeDB<any, any>): Record<string, unknown> {
  const s: Stats = db.stats();
  return {
    sst_file_count: s.sstFileCount,
    total_bytes: s.sstBytes,
    levels: s.levels.map((l: Stats) => ({ level: l.level, file_count: l.fileCount, bytes: l.bytes })),
    pending_compaction_bytes: s.pendingCompactionBytes,
    write_amplification: s.writeAmplification,
    cache_memory_bytes: s.blockCacheBytes,
    cache_size_bytes: s.blockCacheCapacityBytes,
    index_memory_bytes: s.memtableActiveBytes + s.memtableImmutableBytes,
    wal_segment_count: s.walSegmentCount,
    compactions: s.compactions,
    stall_count: s.stallCount,
    storage_operation_errors: s.storageOperationErrors,
    writes_failed: s.writesFailed,
  };
}

function send(res: http.ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type });
  res.end(text);
}

/** An HTTP request handler serving the endpoints above for one database. */
export function adminHandler(db: StemeDB<any, any>): http.RequestListener {
  return (req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const open = db.status === 'open';
    void (async () => {
      try {
        if (req.method === 'GET' && url === '/health') {
          const failed = open && (db.stats() as Stats).writesFailed;
          if (open && !failed) send(res, 200, { status: 'ok' });
          else send(res, 503, { status: open ? 'writes-failed' : db.status });
        } else if (!open) {
          send(res, 503, { error: 'LEVEL_DATABASE_NOT_OPEN' });
        } else if (req.method === 'GET' && url === '/metrics') {
          send(res, 200, prometheusMetrics(db), 'text/plain; version=0.0.4');
        } else if (req.method === 'GET' && url === '/v1/admin/storage/stats') {
          send(res, 200, storageStats(db));
        } else if (req.method === 'POST' && (url === '/v1/admin/storage/compact' || url === '/v1/admin/compact')) {
          const before = storageStats(db);
          const started = performance.now();
          await db.compactRange();
          send(res, 200, { compacted: true, seconds: (performance.now() - started) / 1000, before, after: storageStats(db) });
        } else {
          send(res, 404, { error: 'not found' });
        }
      } catch (e) {
        send(res, 500, { error: (e as { code?: string }).code ?? 'error', message: String((e as Error).message ?? e) });
      }
    })();
  };
}

/** Starts the admin server (default 127.0.0.1:18180, the runbooks' port). Close it with server.close(). */
export async function createAdminServer(db: StemeDB<any, any>, options: { port?: number; host?: string } = {}): Promise<http.Server> {
  const server = http.createServer(adminHandler(db));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 18180, options.host ?? '127.0.0.1', () => resolve());
  });
  return server;
}
