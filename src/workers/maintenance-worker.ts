// Threads: flush/compaction pool workers (piscina). Entry point for background table work:
// flushes (below), compactions (compaction.ts), and the verify and repair tools (src/tools).
//
// A flush writes one immutable memtable, read directly from shared memory, as a level-0 SST:
//   1. Create kv/NNNNNN.sst exclusively (a leftover from a failed attempt is an orphan that
//      open removes; the file number is never reused, so 'wx' catches logic errors).
//   2. Stream the memtable's entries into a TableBuilder, which checksums and compresses blocks.
//      With task.blockCache, each data block's uncompressed bytes also go into the database's
//      shared block cache (RocksDB's prepopulate_block_cache = kFlushOnly): the next reads of
//      fresh data cost one copy out of shared memory instead of a read and an LZ4 decode. This
//      thread may wait for the cache mutex (lockWaitMs); a block it cannot insert is skipped.
//      Compactions never warm it: their outputs would push the hot set out.
//   3. finish() writes the filter, index and footer, then fdatasyncs the file.
//   4. fsync kv/ so the new directory entry is durable before the MANIFEST names the file.
// On any failure the partial file is removed, its blocks are evicted from the shared cache, and
// the error travels back as { code, message, cause }.
// The MANIFEST edit is not made here: the WAL worker owns the MANIFEST.

import { errorToWire } from '../common/errors.js';
import { fileSystem } from '../common/fs.js';
import { kvDir, tablePath } from '../common/files.js';
import type { CompactionResult, CompactionTask, FlushResult, FlushTask, ToolTask } from '../shm/messages.js';
import { repairDatabase, type RepairReport } from '../tools/repair.js';
import { verifyDatabase, type VerifyResult } from '../tools/verify.js';
import { Memtable } from '../shm/memtable.js';
import { SharedBlockCache } from '../shm/shared-block-cache.js';
import { TableBuilder } from '../sst/table-builder.js';
import { compact } from './compaction.js';

export default function run(task: FlushTask | CompactionTask | ToolTask): FlushResult | CompactionResult | VerifyResult | RepairReport | { error: ReturnType<typeof errorToWire> } {
  try {
    switch (task.type) {
      case 'flush': return flush(task);
      case 'compact': return compact(task);
      case 'verify': return verifyDatabase(task.location);
      case 'repair': return repairDatabase(task.location);
    }
  } catch (e) {
    return { error: errorToWire(e) };
  }
}

function flush(task: FlushTask): FlushResult {
  const fs = fileSystem();
  const file = tablePath(task.location, task.fileNumber);
  const memtable = Memtable.attach(task.memtable);
  // One instance per task: cheap (views over the buffer), and it dies with the task.
  const cache = task.blockCache === undefined ? undefined : SharedBlockCache.attach(task.blockCache);
  const warm = cache && ((offset: number, contents: Uint8Array) => void cache.insert(task.fileNumber, offset, contents));
  const fd = fs.openSync(file, 'wx');
  let closed = false;
  try {
    const builder = new TableBuilder(fd, file, { blockSize: task.blockSize, compression: task.compression, onDataBlock: warm });
    const it = memtable.iterator();
    for (it.seekToFirst(); it.valid(); it.next()) builder.add(it.key(), it.value());
    it.close();
    const props = builder.finish();
    fs.closeSync(fd);
    closed = true;
    fs.syncDirSync(kvDir(task.location));
    return { fileNumber: task.fileNumber, ...props };
  } catch (e) {
    if (!closed) { try { fs.closeSync(fd); } catch { /* already failing */ } }
    try { fs.unlinkSync(file); } catch { /* nothing to remove */ }
    // Nothing will read this file number again; free its blocks' space now rather than by CLOCK.
    cache?.evictFile(task.fileNumber);
    throw e;
  }
}

