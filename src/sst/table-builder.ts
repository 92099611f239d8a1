// Threads: the thread that writes the table (memtable flush or compaction worker). One
// builder per file; not shared.
//
// Writes one SST (layout in format.ts):
//   1. add() appends entries to the current data block; the block is cut before it would grow
//      past blockSize (uncompressed), so only a single entry larger than blockSize makes a
//      bigger block, and such an entry gets a block of its own;
//   2. each cut block is LZ4-compressed when enabled and it saves at least 1/8, else stored
//      raw; its index entry (last key → handle) is queued in the index block;
//   3. finish() writes the bloom filter, the index block and the footer, then fdatasyncs.
// options.onDataBlock sees each data block's uncompressed contents as it is written (step 2).
// Output is staged in a 256 KiB buffer and written with positioned writes through
// fileSystem(), so small blocks do not cost one syscall each.
// REQUIRES: internal keys strictly increasing (asserted); the caller owns fd (opened for
// writing, empty) and closes it after finish(); on error the caller deletes the file.

import { assert } from '../common/assert.js';
import { COMPRESSED_BLOCK_BYTES_MAX, compressBlock, CompressionKind } from '../common/compression.js';
import { ioError } from '../common/errors.js';
import { fileSystem, writeAllSync } from '../common/fs.js';
import { KEY_BYTES_MAX, TRAILER_BYTES, VALUE_BYTES_MAX } from '../common/keys.js';
import { BlockBuilder } from './block-builder.js';
import { compareBytesRange, compareInternalRange } from './block.js';
import { BloomBuilder } from './bloom.js';
import {
  BLOCK_HANDLE_BYTES_MAX,
  BLOCK_TRAILER_BYTES,
  BLOOM_BITS_PER_KEY_DEFAULT,
  type BlockHandle,
  encodeBlockHandle,
  encodeBlockTrailer,
  encodeFooter,
  FORMAT_VERSION_CURRENT,
  RESTART_INTERVAL_DEFAULT,
} from './format.js';

const OUTPUT_CHUNK_BYTES = 256 * 1024;
/** Index keys are full internal keys; a restart per entry makes index seeks a pure binary search. */
const INDEX_RESTART_INTERVAL = 1;

export interface TableBuilderOptions {
  /** Target uncompressed data block size in bytes. */
  blockSize: number;
  compression: boolean;
  /** 0 disables the filter; default BLOOM_BITS_PER_KEY_DEFAULT. */
  bloomBitsPerKey?: number;
  restartInterval?: number;
  /**
   * Called with each data block as it is written: its file offset and its uncompressed contents,
   * byte for byte what a reader's decodeBlock returns for it. contents is only valid during the
   * call (the builder reuses its buffer). Flushes use it to warm the shared block cache.
   */
  onDataBlock?: (offset: number, contents: Uint8Array) => void;
}

export interface TableProperties {
  fileSize: number;
  entryCount: number;
  /** Internal keys (copies); empty arrays when entryCount is 0. */
  smallestKey: Uint8Array;
  largestKey: Uint8Array;
  smallestSequence: number;
  largestSequence: number;
}

function trailerSequence(key: Uint8Array): number {
  const t = key.length - TRAILER_BYTES;
  const low = (key[t] | (key[t + 1] << 8) | (key[t + 2] << 16) | (key[t + 3] << 24)) >>> 0;
  const high = (key[t + 4] | (key[t + 5] << 8) | (key[t + 6] << 16) | (key[t + 7] << 24)) >>> 0;
  return high * 0x1000000 + (low >>> 8);
}

export class TableBuilder {
  private readonly blockSize: number;
  private readonly compression: boolean;
  private readonly data: BlockBuilder;
  private readonly index = new BlockBuilder(INDEX_RESTART_INTERVAL);
  private readonly bloom: BloomBuilder | undefined;
  private readonly onDataBlock: ((offset: number, contents: Uint8Array) => void) | undefined;

  /** Staged output: chunk[0, chunkUsed) belongs at file offset chunkStart. */
  private readonly chunk = new Uint8Array(OUTPUT_CHUNK_BYTES);
  private chunkUsed = 0;
  private chunkStart = 0;
  /** File offset just past everything written or staged. */
  private offset = 0;

  private lastKey = new Uint8Array(64);
  private lastKeyLength = 0;
  private smallestKey: Uint8Array = new Uint8Array(0);
  private smallestSequence = Number.MAX_SAFE_INTEGER;
  private largestSequence = 0;
  private entryCount = 0;
  private finished = false;
  private readonly trailer = new Uint8Array(BLOCK_TRAILER_BYTES);
  private readonly handleBytes = new Uint8Array(BLOCK_HANDLE_BYTES_MAX);

  constructor(private readonly fd: number, readonly fileName: string, options: TableBuilderOptions) {
    assert(Number.isInteger(options.blockSize) && options.blockSize >= 1, 'blockSize must be a positive integer');
    this.blockSize = options.blockSize;
    this.compression = options.compression;
    this.data = new BlockBuilder(options.restartInterval ?? RESTART_INTERVAL_DEFAULT, Math.min(options.blockSize + 1024, 4 * 1024 * 1024));
    const bitsPerKey = options.bloomBitsPerKey ?? BLOOM_BITS_PER_KEY_DEFAULT;
    this.bloom = bitsPerKey > 0 ? new BloomBuilder(bitsPerKey) : undefined;
    this.onDataBlock = options.onDataBlock;
  }

  /** Bytes written so far plus the open data block; flushes compare it with the target file size. */
  get estimatedFileSize(): number {
    return this.offset + (this.data.empty ? 0 : this.data.estimatedSize);
  }

  get entries(): number {
    return this.entryCount;
  }

  /** REQUIRES: internalKey > every key added before (internal-key order); sizes within keys.ts limits. */
  add(internalKey: Uint8Array, value: Uint8Array): void {
    assert(!this.finished, 'TableBuilder.add after finish');
    assert(internalKey.length >= TRAILER_BYTES && internalKey.length <= KEY_BYTES_MAX + TRAILER_BYTES, 'internal key length out of range');
    assert(value.length <= VALUE_BYTES_MAX, 'value too large');
    const userKeyLength = internalKey.length - TRAILER_BYTES;
    let newUserKey = true;
    if (this.entryCount > 0) {
      assert(compareInternalRange(this.lastKey, 0, this.lastKeyLength, internalKey, 0, internalKey.length) < 0, 'TableBuilder keys must be strictly increasing');
      newUserKey = compareBytesRange(this.lastKey, 0, this.lastKeyLength - TRAILER_BYTES, internalKey, 0, userKeyLength) !== 0;
    } else {
      this.smallestKey = internalKey.slice();
    }
    if (newUserKey && this.bloom) this.bloom.addKey(internalKey.subarray(0, userKeyLength));

    if (!this.data.empty && this.data.estimatedSize + BlockBuilder.entryBytesMax(internalKey.length, value.length) > this.blockSize) {
      this.flushDataBlock();
    }
    this.data.add(internalKey, value);
    if (this.data.estimatedSize >= this.blockSize) this.flushDataBlock();

    if (this.lastKey.length < internalKey.length) this.lastKey = new Uint8Array(Math.max(internalKey.length, this.lastKey.length * 2));
    this.lastKey.set(internalKey);
    this.lastKeyLength = internalKey.length;
    const sequence = trailerSequence(internalKey);
    if (sequence < this.smallestSequence) this.smallestSequence = sequence;
    if (sequence > this.largestSequence) this.largestSequence = sequence;
    this.entryCount++;
  }

  /** Writes the filter, index and footer, then fdatasyncs. The caller closes the fd. */
  finish(): TableProperties {
    assert(!this.finished, 'TableBuilder.finish twice');
    if (!this.data.empty) this.flushDataBlock();
    let filter: BlockHandle = { offset: 0, size: 0 };
    if (this.bloom) filter = this.writeBlock(this.bloom.finish(), false);
    const index = this.writeBlock(this.index.finish(), this.compression);
    this.append(encodeFooter({ filter, index, entryCount: this.entryCount, version: FORMAT_VERSION_CURRENT }));
    this.flushChunk();
    try {
      fileSystem().fdatasyncSync(this.fd);
    } catch (e) {
      throw ioError(`fdatasync of ${this.fileName} failed`, e);
    }
    this.finished = true;
    const empty = this.entryCount === 0;
    return {
      fileSize: this.offset,
      entryCount: this.entryCount,
      smallestKey: this.smallestKey,
      largestKey: this.lastKey.slice(0, this.lastKeyLength),
      smallestSequence: empty ? 0 : this.smallestSequence,
      largestSequence: this.largestSequence,
    };
  }

  private flushDataBlock(): void {
    // The index key is the block's last key: the first index key >= a target names the block holding it.
    const contents = this.data.finish();
    const handle = this.writeBlock(contents, this.compression);
    this.onDataBlock?.(handle.offset, contents);
    const end = encodeBlockHandle(this.handleBytes, 0, handle);
    this.index.add(this.data.lastKey(), this.handleBytes.subarray(0, end));
    this.data.reset();
  }

  private writeBlock(contents: Uint8Array, compress: boolean): BlockHandle {
    // compressBlock's frame size limit is below BLOCK_BYTES_MAX; larger blocks stay raw.
    const frame = compress && contents.length <= COMPRESSED_BLOCK_BYTES_MAX ? compressBlock(contents) : undefined;
    const payload = frame ?? contents;
    encodeBlockTrailer(payload, frame ? CompressionKind.Lz4 : CompressionKind.None, contents.length, this.trailer);
    const handle = { offset: this.offset, size: payload.length };
    this.append(payload);
    this.append(this.trailer);
    return handle;
  }

  private append(bytes: Uint8Array): void {
    if (this.chunkUsed + bytes.length > this.chunk.length) this.flushChunk();
    if (bytes.length >= this.chunk.length) {
      this.write(bytes, this.offset);
      this.chunkStart = this.offset + bytes.length;
    } else {
      this.chunk.set(bytes, this.chunkUsed);
      this.chunkUsed += bytes.length;
    }
    this.offset += bytes.length;
  }

  private flushChunk(): void {
    if (this.chunkUsed > 0) this.write(this.chunk.subarray(0, this.chunkUsed), this.chunkStart);
    this.chunkStart += this.chunkUsed;
    this.chunkUsed = 0;
  }

  private write(bytes: Uint8Array, position: number): void {
    try {
      writeAllSync(this.fd, bytes, position);
    } catch (e) {
      throw ioError(`write to ${this.fileName} at ${position} failed`, e);
    }
  }
}
