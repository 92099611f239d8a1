// Threads: all (pure functions, no state). The SST file layout: the one place it is defined.
// Shared by table-builder.ts (writer) and table-reader.ts (reader); see docs/format-sst.md.
// Nothing else may restate these offsets or sizes.
//
//   table        := data_block* filter_block? index_block footer
//
//   block        := payload: byte[handle.size]  block_trailer          (every block, data or meta)
//   block_trailer:= compression: u8             -- CompressionKind: 0 = none, 1 = LZ4
//                   uncompressed_size: u32 LE   -- bytes of the decoded contents
//                   checksum: u32 LE            -- checksum32(compression ‖ uncompressed_size,
//                                                  seed = checksum32(payload)): covers all 5 bytes above
//                                                  and the payload, with no concatenation copy
//   payload      := contents                    (compression = 0, uncompressed_size = handle.size)
//                 | lz4_frame                   (compression = 1; lz4-wasm frame: u32 LE size prefix ‖ LZ4 block,
//                                                the prefix must equal uncompressed_size)
//
//   contents of a data or index block (block-builder.ts):
//   contents     := entry* restart: u32 LE [num_restarts] num_restarts: u32 LE
//   entry        := shared: varint  non_shared: varint  value_length: varint
//                   key_delta: byte[non_shared]  value: byte[value_length]
//     key = previous key[0, shared) ‖ key_delta; shared = 0 at every restart point, and
//     restart[i] is the byte offset of such an entry. num_restarts >= 1, restart[0] = 0.
//     Data block: key = internal key (keys.ts), value = user value.
//     Index block: one entry per data block; key = the LAST internal key of that block,
//     value = block_handle of that block. So the first index key >= target names the only
//     block that can hold the first entry >= target.
//
//   contents of the filter block (bloom.ts), over distinct USER keys of the whole table:
//   filter       := bits: byte[n]  num_probes: u8
//
//   block_handle := offset: varint  size: varint    -- size excludes the 9-byte trailer
//
//   footer       := filter_handle: block_handle     -- size 0 and offset 0 when the table has no filter
//                   index_handle: block_handle
//                   zero padding to 32 bytes        -- 2 * BLOCK_HANDLE_BYTES_MAX
//                   entry_count: u64 LE             -- written as two u32 LE words, low word first
//                   version: u32 LE                 -- FormatVersion
//                   footer_checksum: u32 LE         -- checksum32(footer bytes [0, 44))
//                   magic: byte[8]                  -- TABLE_MAGIC
//                                                      = 56 bytes (FOOTER_BYTES), at fileSize - 56
//
// The blocks are contiguous: the filter block (if any) starts where the last data block
// ends, the index block follows it, and the footer follows the index block. Readers check
// this exactly, so a corrupt handle is caught before any read.

import { checksum32 } from '../common/checksum.js';
import { COMPRESSED_BLOCK_BYTES_MAX, CompressionKind, decompressBlock, DecompressError } from '../common/compression.js';
import { CorruptionError } from '../common/errors.js';
import { KEY_BYTES_MAX, TRAILER_BYTES, VALUE_BYTES_MAX } from '../common/keys.js';
import { getVarint, putVarint } from '../common/varint.js';

/**
 * SST format versions. APPEND ONLY: never renumber or reuse a value, they are embedded in
 * every table's footer. Each entry says what it added.
 */
export const enum FormatVersion {
  /** Initial layout: LZ4 blocks with xxh32 trailers, full bloom filter, last-key index. */
  V1 = 1,
}
export const FORMAT_VERSION_CURRENT = FormatVersion.V1;

/** "\x89STEME\r\n" style magic: high bit and CR/LF catch text-mode mangling, like PNG's. */
export const TABLE_MAGIC: Uint8Array = Uint8Array.of(0x89, 0x53, 0x54, 0x45, 0x4d, 0x45, 0x0d, 0x0a);

/** Block trailer: compression u8 ‖ uncompressed_size u32 LE ‖ checksum u32 LE. */
export const BLOCK_TRAILER_BYTES = 9;
const TRAILER_COMPRESSION_OFFSET = 0;
const TRAILER_UNCOMPRESSED_SIZE_OFFSET = 1;
const TRAILER_CHECKSUM_OFFSET = 5;

/** A varint for a value < 2^53 takes at most 8 bytes (getVarint reads at most 8). */
export const BLOCK_HANDLE_BYTES_MAX = 16;

export const FOOTER_HANDLES_BYTES = 2 * BLOCK_HANDLE_BYTES_MAX;
const FOOTER_ENTRY_COUNT_OFFSET = FOOTER_HANDLES_BYTES; // 32
const FOOTER_VERSION_OFFSET = FOOTER_ENTRY_COUNT_OFFSET + 8; // 40
const FOOTER_CHECKSUM_OFFSET = FOOTER_VERSION_OFFSET + 4; // 44
const FOOTER_MAGIC_OFFSET = FOOTER_CHECKSUM_OFFSET + 4; // 48
export const FOOTER_BYTES = FOOTER_MAGIC_OFFSET + TABLE_MAGIC.length; // 56

/** Block contents: restart offsets and their count are u32 LE. */
export const RESTART_BYTES = 4;
export const RESTART_INTERVAL_DEFAULT = 16;
export const BLOOM_BITS_PER_KEY_DEFAULT = 10;

/**
 * The largest decoded block a reader accepts: one entry with the largest key and value, its
 * three varint headers and one restart, with slack. Checked before any allocation.
 */
export const BLOCK_BYTES_MAX = VALUE_BYTES_MAX + KEY_BYTES_MAX + TRAILER_BYTES + 1024;

/**
 * LZ4 cannot expand input more than 255:1 (a match-length byte adds at most 255), so a
 * smaller frame claiming a larger size is corrupt; checked before LZ4 allocates anything.
 */
const LZ4_EXPANSION_MAX = 256;

export interface BlockHandle {
  offset: number;
  size: number;
}

/** Writes the handle at pos; returns the position after it. */
export function encodeBlockHandle(out: Uint8Array, pos: number, handle: BlockHandle): number {
  pos = putVarint(out, pos, handle.offset);
  return putVarint(out, pos, handle.size);
}

/** Decodes a handle from buf[pos, end); returns undefined when malformed. */
export function decodeBlockHandle(buf: Uint8Array, pos: number, end: number): { handle: BlockHandle; next: number } | undefined {
  const [offset, afterOffset] = getVarint(buf, pos, end);
  if (afterOffset < 0) return undefined;
  const [size, afterSize] = getVarint(buf, afterOffset, end);
  if (afterSize < 0) return undefined;
  return { handle: { offset, size }, next: afterSize };
}

/**
 * Fills trailer (BLOCK_TRAILER_BYTES) for payload. The checksum covers the payload and the
 * first 5 trailer bytes, so a flipped compression byte or size is caught too.
 */
export function encodeBlockTrailer(payload: Uint8Array, compression: CompressionKind, uncompressedBytes: number, trailer: Uint8Array): void {
  const view = new DataView(trailer.buffer, trailer.byteOffset, BLOCK_TRAILER_BYTES);
  view.setUint8(TRAILER_COMPRESSION_OFFSET, compression);
  view.setUint32(TRAILER_UNCOMPRESSED_SIZE_OFFSET, uncompressedBytes, true);
  // Chaining through the seed covers payload and trailer without copying them together.
  const payloadHash = checksum32(payload);
  view.setUint32(TRAILER_CHECKSUM_OFFSET, checksum32(trailer.subarray(0, TRAILER_CHECKSUM_OFFSET), payloadHash), true);
}

/**
 * Verifies and decodes one on-disk block (payload ‖ trailer, exactly handle.size + 9 bytes).
 * Returns the decoded contents (a subarray of raw when uncompressed). Throws CorruptionError
 * naming file and blockOffset on any mismatch; never returns unverified bytes.
 */
export function decodeBlock(file: string, blockOffset: number, raw: Uint8Array): Uint8Array {
  if (raw.length < BLOCK_TRAILER_BYTES) throw new CorruptionError(file, blockOffset, 'block shorter than its trailer');
  const payloadBytes = raw.length - BLOCK_TRAILER_BYTES;
  const payload = raw.subarray(0, payloadBytes);
  const trailer = raw.subarray(payloadBytes);
  const view = new DataView(trailer.buffer, trailer.byteOffset, BLOCK_TRAILER_BYTES);
  const stored = view.getUint32(TRAILER_CHECKSUM_OFFSET, true);
  const actual = checksum32(trailer.subarray(0, TRAILER_CHECKSUM_OFFSET), checksum32(payload));
  if (stored !== actual) throw new CorruptionError(file, blockOffset, `block checksum mismatch (stored ${stored}, computed ${actual})`);

  const compression = view.getUint8(TRAILER_COMPRESSION_OFFSET);
  const uncompressedBytes = view.getUint32(TRAILER_UNCOMPRESSED_SIZE_OFFSET, true);
  if (uncompressedBytes > BLOCK_BYTES_MAX) throw new CorruptionError(file, blockOffset, `block size ${uncompressedBytes} exceeds ${BLOCK_BYTES_MAX}`);
  switch (compression) {
    case CompressionKind.None:
      if (uncompressedBytes !== payloadBytes) throw new CorruptionError(file, blockOffset, `raw block size ${uncompressedBytes} != payload ${payloadBytes}`);
      return payload;
    case CompressionKind.Lz4:
      if (uncompressedBytes > COMPRESSED_BLOCK_BYTES_MAX || uncompressedBytes > payloadBytes * LZ4_EXPANSION_MAX + 64) {
        throw new CorruptionError(file, blockOffset, `lz4 block claims ${uncompressedBytes} bytes from ${payloadBytes}`);
      }
      try {
        return decompressBlock(payload, uncompressedBytes);
      } catch (e) {
        if (e instanceof DecompressError) throw new CorruptionError(file, blockOffset, e.message);
        throw e;
      }
    default:
      throw new CorruptionError(file, blockOffset, `unknown compression kind ${compression}`);
  }
}

export interface Footer {
  filter: BlockHandle; // size 0: no filter
  index: BlockHandle;
  entryCount: number;
  version: FormatVersion;
}

export function encodeFooter(footer: Footer): Uint8Array {
  const out = new Uint8Array(FOOTER_BYTES);
  const view = new DataView(out.buffer);
  const pos = encodeBlockHandle(out, 0, footer.filter);
  encodeBlockHandle(out, pos, footer.index);
  view.setUint32(FOOTER_ENTRY_COUNT_OFFSET, footer.entryCount % 0x1_0000_0000, true);
  view.setUint32(FOOTER_ENTRY_COUNT_OFFSET + 4, Math.floor(footer.entryCount / 0x1_0000_0000), true);
  view.setUint32(FOOTER_VERSION_OFFSET, footer.version, true);
  view.setUint32(FOOTER_CHECKSUM_OFFSET, checksum32(out.subarray(0, FOOTER_CHECKSUM_OFFSET)), true);
  out.set(TABLE_MAGIC, FOOTER_MAGIC_OFFSET);
  return out;
}

/**
 * Decodes and validates the footer read from fileSize - FOOTER_BYTES, including the exact
 * contiguity of filter and index blocks; errors name the footer field's file offset.
 */
export function decodeFooter(file: string, fileSize: number, bytes: Uint8Array): Footer {
  const footerOffset = fileSize - FOOTER_BYTES;
  const view = new DataView(bytes.buffer, bytes.byteOffset, FOOTER_BYTES);
  for (let i = 0; i < TABLE_MAGIC.length; i++) {
    if (bytes[FOOTER_MAGIC_OFFSET + i] !== TABLE_MAGIC[i]) throw new CorruptionError(file, footerOffset + FOOTER_MAGIC_OFFSET, 'bad table magic (not an SST or truncated)');
  }
  const stored = view.getUint32(FOOTER_CHECKSUM_OFFSET, true);
  if (stored !== checksum32(bytes.subarray(0, FOOTER_CHECKSUM_OFFSET))) throw new CorruptionError(file, footerOffset + FOOTER_CHECKSUM_OFFSET, 'footer checksum mismatch');
  const version = view.getUint32(FOOTER_VERSION_OFFSET, true);
  if (version !== FormatVersion.V1) throw new CorruptionError(file, footerOffset + FOOTER_VERSION_OFFSET, `unsupported table format version ${version}`);
  const entryCount = view.getUint32(FOOTER_ENTRY_COUNT_OFFSET, true) + view.getUint32(FOOTER_ENTRY_COUNT_OFFSET + 4, true) * 0x1_0000_0000;

  const filter = decodeBlockHandle(bytes, 0, FOOTER_HANDLES_BYTES);
  const index = filter && decodeBlockHandle(bytes, filter.next, FOOTER_HANDLES_BYTES);
  if (!filter || !index) throw new CorruptionError(file, footerOffset, 'malformed footer block handles');
  const indexEnd = index.handle.offset + index.handle.size + BLOCK_TRAILER_BYTES;
  if (indexEnd !== footerOffset) throw new CorruptionError(file, footerOffset, `index block ends at ${indexEnd}, footer starts at ${footerOffset}`);
  if (filter.handle.size !== 0 && filter.handle.offset + filter.handle.size + BLOCK_TRAILER_BYTES !== index.handle.offset) {
    throw new CorruptionError(file, footerOffset, 'filter block does not end where the index block starts');
  }
  if (filter.handle.size === 0 && filter.handle.offset !== 0) throw new CorruptionError(file, footerOffset, 'empty filter handle with nonzero offset');
  return { filter: filter.handle, index: index.handle, entryCount, version };
}
