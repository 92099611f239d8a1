// Threads: flush/compaction pool workers (piscina). Merges SST files into new files one level down.
//
// Steps:
//   1. Open every input table (this thread's own fds; the caller's thread pins the inputs in
//      its Version, so they cannot be deleted while we read them). Every block read verifies
//      its checksum; a mismatch aborts the compaction with LEVEL_CORRUPTION.
//   2. Merge them by internal key with the merging iterator.
//   3. Keep only the newest version of each user key. Older versions are never needed: a
//      snapshot or iterator reads the files of the Version it started with, and those files
//      stay on disk until it lets go of them.
//   4. Drop a tombstone when no file in a deeper level can hold its key; otherwise keep it
//      so it keeps hiding the older value below.
//   5. Cut an output file at targetFileBytes, but never between two versions of one user key.
//   6. Return the outputs' metadata. The caller's thread records them in the MANIFEST and
//      deletes the inputs once no reader holds them. On failure every output is removed.

import { fileSystem } from '../common/fs.js';
import { kvDir, tablePath } from '../common/files.js';
import type { InternalIterator } from '../common/iterator.js';
import { compareByteRanges, EntryKind, TRAILER_BYTES, trailerKind } from '../common/keys.js';
import { MergingIterator } from '../common/merging-iterator.js';
import type { CompactionResult, CompactionTask, FlushResult } from '../shm/messages.js';
import { sleepWorker } from '../shm/signals.js';
import { TableBuilder } from '../sst/table-builder.js';
import { TableReader } from '../sst/table-reader.js';

export function compact(task: CompactionTask): CompactionResult {
  const fs = fileSystem();
  const readers: TableReader[] = [];
  const outputs: FlushResult[] = [];
  const created: string[] = [];
  let bytesRead = 0;
  let bytesWritten = 0;
  let entriesIn = 0;
  let entriesOut = 0;
  try {
    const children: InternalIterator[] = [];
    for (const input of task.inputs) {
      const reader = TableReader.openSync(tablePath(task.location, input.fileNumber), input.fileNumber);
      readers.push(reader);
      bytesRead += reader.fileSize;
      children.push(reader.iterator());
    }
    const merged = new MergingIterator(children, false);
    const deeper = task.deeperRanges;
    const mayExistDeeper = (key: Uint8Array, userBytes: number): boolean => {
      for (const r of deeper) {
        if (compareByteRanges(key, 0, userBytes, r.smallest, 0, r.smallest.length) >= 0
          && compareByteRanges(key, 0, userBytes, r.largest, 0, r.largest.length) <= 0) return true;
      }
      return false;
    };

    let builder: TableBuilder | undefined;
    let fd = -1;
    let fileNumber = -1;
    let nextOutput = 0;
    const finishOutput = () => {
      if (!builder) return;
      const props = builder.finish();
      fs.closeSync(fd);
      fd = -1;
      bytesWritten += props.fileSize;
      outputs.push({ fileNumber, ...props });
      builder = undefined;
      if (task.throttleMs) sleepWorker(task.throttleMs);
    };

    let lastUserKey: Uint8Array | undefined;
    for (merged.seekToStart(); merged.valid(); merged.advance()) {
      entriesIn++;
      const key = merged.key();
      const userBytes = key.length - TRAILER_BYTES;
      const sameAsLast = lastUserKey !== undefined && compareByteRanges(key, 0, userBytes, lastUserKey, 0, lastUserKey.length) === 0;
      if (sameAsLast) continue; // an older version, shadowed by the newer one already kept or dropped
      lastUserKey = key.slice(0, userBytes);
      if (trailerKind(key, userBytes) === EntryKind.Delete && !mayExistDeeper(key, userBytes)) continue;
      if (builder && builder.estimatedFileSize >= task.targetFileBytes) finishOutput();
      if (!builder) {
        if (nextOutput >= task.outputFileNumbers.length) throw new Error('stemedb assertion failed: compaction ran out of reserved file numbers');
        fileNumber = task.outputFileNumbers[nextOutput++];
        const file = tablePath(task.location, fileNumber);
        fd = fs.openSync(file, 'wx');
        created.push(file);
        builder = new TableBuilder(fd, file, { blockSize: task.blockSize, compression: task.compression });
      }
      builder.add(key, merged.value());
      entriesOut++;
    }
    finishOutput();
    merged.close();
    if (outputs.length > 0) fs.syncDirSync(kvDir(task.location));
    return { outputs, bytesRead, bytesWritten, entriesIn, entriesOut };
  } catch (e) {
    for (const file of created) { try { fs.unlinkSync(file); } catch { /* removing partial outputs */ } }
    throw e;
  } finally {
    for (const r of readers) r.close();
  }
}
