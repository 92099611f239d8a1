// Threads: ONE writer thread (the memtable writer worker) calls add() and markImmutable();
// ANY number of reader threads (main thread, other workers) call the getters, get() and
// iterator() concurrently, without locks. Every thread holds its own Memtable object over the
// same SharedArrayBuffer: the creator uses Memtable.create(), everyone else Memtable.attach().
//
// The shared-memory memtable: an arena skiplist inside one SharedArrayBuffer, ordered by
// compareInternalKeys (user key ascending, then sequence descending; see common/keys.ts).
//
// Thread safety
//   - Single writer. Nothing stops two threads from calling add() at once; doing so corrupts
//     the list. The engine guarantees one writer per memtable.
//   - Readers never lock and never wait on the writer. They follow next-pointers with
//     Atomics.load; the writer publishes with Atomics.store, after it has fully written the
//     node with plain stores. Atomics.store is sequentially consistent, so a reader that
//     observes a pointer to a node also observes every byte the writer wrote before storing
//     that pointer (the JS memory model's synchronizes-with edge).
//   - Readers may see an entry before entryCount, usedBytes or the sequence bounds count it.
//     The counters are published after the links, so a reader that read entryCount === n
//     afterwards finds at least n entries in the list.
//
// Invariants
//   1. A node is written completely before the first pointer to it is published, and its
//      header, key and value bytes never change afterwards. Only its next-pointers change,
//      and only from 0 or from one node to a node that sorts between them.
//   2. Level 0 is always one strictly increasing list of every published entry; level i > 0
//      is a sorted sublist of level i - 1.
//   3. No two nodes have the same internal key (REQUIRES: sequences are unique; the writer
//      guarantees that, and add() asserts it).
//   4. Nodes are never freed or moved. The arena is dropped as a whole with the memtable, so
//      key() and value() views from an iterator stay valid and unchanged as long as the
//      caller holds the buffer (note: views INTO SHARED MEMORY, immutable once published).
//
// add(), in steps
//   1. Refuse (return false, change nothing) unless the arena has entryBytesMax() bytes left.
//      Using the max-height bound instead of the drawn height makes "full" deterministic:
//      a memtable created with entryBytesMax(k, v) bytes always accepts one such entry.
//   2. Find, at every level, the last node that sorts before the new key (the splice).
//   3. Draw a height (p = 1/4, at most HEIGHT_MAX) from a per-memtable xorshift32 PRNG.
//      If it exceeds the list height, raise the list height first; readers that see the new
//      height early only find null pointers at the head there and step down.
//   4. Bump-allocate the node, write its header, internal key, value and initial
//      next-pointers with plain stores (nobody can reach the node yet).
//   5. Link it bottom-up with Atomics.store: once level 0 is linked the entry is visible;
//      upper levels only speed up searches.
//   6. Publish usedBytes, the sequence bounds (under a seqlock) and entryCount.
//
// Key filter: a point lookup in a skiplist of ~30k entries costs ~1.5 us of key compares,
// and most lookups (reads of keys that live in SSTs) miss. add() sets BLOOM_PROBES bits per
// user key (plain stores: one writer; the Atomics.store that publishes the node in step 5 also
// publishes them), before the node is linked, so a reader that could find the node also sees
// its bits. get() returns early when a bit is clear. Sized at 1 bit per BLOOM_ARENA_BYTES_PER_BIT
// arena bytes: >= 4 bits per key even for the smallest possible node, ~18 for 100-byte values.
// (RocksDB's memtable_whole_key_filtering does the same job.)
//
// Readers: a search walks from the head at the top level, moving right while the next node
// sorts before the target and down otherwise (LevelDB's FindGreaterOrEqual). prev() finds
// the last node before the current one with the same search (O(log n)), as LevelDB does.
//
// Buffer layout (all offsets in bytes from the start of the SharedArrayBuffer; every Int32
// slot is little-endian because typed arrays use platform order and Node runs on LE hosts):
//
//   +--------------------------------------------------------------+  0
//   | header: HEADER_SLOTS Int32 slots (see SLOT_* below)          |
//   +--------------------------------------------------------------+  HEAD_NODE_OFFSET = 64
//   | head node: a node of height HEIGHT_MAX with no key or value  |
//   +--------------------------------------------------------------+  ARENA_OFFSET = 132
//   | arena: capacityBytes bytes, nodes bump-allocated upwards     |
//   |   node, node, node, ...  | free ...                          |
//   +--------------------------------------------------------------+  ARENA_OFFSET + capacity
//   | key filter: bloomWords Int32 words, a bloom filter over the   |
//   |   user keys added (see "Key filter" below)                   |
//   +--------------------------------------------------------------+  ... + bloomWords * 4
//
//   node (4-byte aligned; a "node reference" is its byte offset, 0 means null):
//     +0   int32 userKeyBytes
//     +4   int32 valueBytes
//     +8   int32 sequenceLow    sequence mod 2^32 (stored as int32 bits)
//     +12  int32 sequenceHigh   floor(sequence / 2^32)
//     +16  int32 heightAndKind  height (bits 0-7) | kind << 8
//     +20  int32 next[height]   node references, read with Atomics.load
//     ...  internal key: user key bytes, then the 8-byte trailer (common/keys.ts)
//     ...  value bytes
//     ...  0-3 bytes of padding to the next 4-byte boundary
//
// The sequence bounds in the header are stored as two Int32 halves each (low 32 bits and
// high bits), like sequences in nodes. Two halves cannot be read atomically, so the writer
// updates them inside a seqlock (SLOT_SEQUENCE_VERSION odd while writing) and readers retry.

import { assert } from '../common/assert.js';
import type { InternalIterator, LookupResult } from '../common/iterator.js';
import { EntryKind, KEY_BYTES_MAX, TRAILER_BYTES, VALUE_BYTES_MAX, readTrailer, writeTrailer } from '../common/keys.js';

/** "SMTB" read as a little-endian uint32; identifies a memtable buffer in attach(). */
export const MEMTABLE_MAGIC = 0x42544d53;
/** Bumped whenever the buffer layout below changes. */
export const MEMTABLE_FORMAT_VERSION = 2;

// Header slots (Int32 indices). Defined only here; other modules must use Memtable.
const SLOT_MAGIC = 0;
const SLOT_FORMAT_VERSION = 1;
const SLOT_CAPACITY_BYTES = 2; // arena capacity, excluding header and head node
const SLOT_USED_BYTES = 3; // allocation cursor, relative to ARENA_OFFSET
const SLOT_ENTRY_COUNT = 4;
const SLOT_LIST_HEIGHT = 5; // current height of the skiplist, 1..HEIGHT_MAX
const SLOT_IMMUTABLE = 6; // 0 or 1
const SLOT_SEQUENCE_VERSION = 7; // seqlock over the four sequence slots below
const SLOT_SMALLEST_SEQUENCE_LOW = 8;
const SLOT_SMALLEST_SEQUENCE_HIGH = 9;
const SLOT_LARGEST_SEQUENCE_LOW = 10;
const SLOT_LARGEST_SEQUENCE_HIGH = 11;
const SLOT_RANDOM_STATE = 12; // xorshift32 state; writer-only
const SLOT_BLOOM_WORDS = 13; // Int32 words in the key filter; fixed at create()
// Slots 14..15 are reserved (zero).
const HEADER_SLOTS = 16;
const HEADER_BYTES = HEADER_SLOTS * 4;

// Node fields (Int32 offsets from the node's first slot).
const NODE_USER_KEY_BYTES = 0;
const NODE_VALUE_BYTES = 1;
const NODE_SEQUENCE_LOW = 2;
const NODE_SEQUENCE_HIGH = 3;
const NODE_HEIGHT_AND_KIND = 4;
const NODE_NEXT = 5;
const NODE_HEADER_BYTES = NODE_NEXT * 4;

/** Skiplist parameters: p = 1/4, at most 12 levels (4^12 = 16M entries before searches degrade). */
const HEIGHT_MAX = 12;
const HEIGHT_MASK = 0xff;
const KIND_SHIFT = 8;
/** Sorts before every real kind at an equal sequence, so a lookup target precedes its own entry. */
const KIND_SEARCH = 0xff;

const HEAD_NODE_OFFSET = HEADER_BYTES;
const HEAD_NODE_BYTES = NODE_HEADER_BYTES + HEIGHT_MAX * 4;
const ARENA_OFFSET = HEAD_NODE_OFFSET + HEAD_NODE_BYTES;

/** The arena must stay addressable by positive Int32 node references. */
const ARENA_BYTES_MAX = 1024 * 1024 * 1024;
const TWO_POW_32 = 4294967296;
/** Bounded wait for a writer that is inside the sequence seqlock (a handful of stores). */
const SEQLOCK_SPINS_MAX = 1 << 24;
/**
 * User keys are compared byte by byte for this many bytes, then with Buffer#compare. Measured
 * on Node 20: the loop costs ~1 ns per byte, a Buffer#compare call ~70 ns flat (native call),
 * so the loop wins up to ~64 equal leading bytes; whole-table inserts and gets with 16-byte
 * keys ran ~4x faster with the loop than with Buffer#compare alone.
 */
const COMPARE_LOOP_BYTES_MAX = 48;
/** Search targets up to this long are compared a word at a time (ArenaView.prepare). */
const PREPARED_KEY_BYTES_MAX = 256;
/** Key filter density: one bit per this many arena bytes (a node is at least 32 bytes). */
const BLOOM_ARENA_BYTES_PER_BIT = 8;
const BLOOM_WORDS_MIN = 16;
const BLOOM_PROBES = 3;

// Load-time layout checks: regions are 4-byte aligned, don't overlap and add up.
assert(HEADER_SLOTS > SLOT_BLOOM_WORDS, 'memtable header slots overflow');
assert(HEAD_NODE_OFFSET % 4 === 0 && ARENA_OFFSET % 4 === 0, 'memtable regions must be 4-byte aligned');
assert(ARENA_OFFSET === HEADER_BYTES + HEAD_NODE_BYTES, 'memtable regions must be contiguous');
assert(ARENA_OFFSET + ARENA_BYTES_MAX < 2 ** 31, 'node references must fit a positive int32');

function align4(bytes: number): number {
  return (bytes + 3) & ~3;
}

function bloomWordsFor(capacityBytes: number): number {
  return Math.max(BLOOM_WORDS_MIN, Math.ceil(capacityBytes / (BLOOM_ARENA_BYTES_PER_BIT * 32)));
}

/** FNV-1a over the bytes, then murmur3's finalizer: a cheap 32-bit hash with full avalanche. */
function keyHash(key: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key[i], 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function nodeBytes(height: number, userKeyBytes: number, valueBytes: number): number {
  return align4(NODE_HEADER_BYTES + height * 4 + userKeyBytes + TRAILER_BYTES + valueBytes);
}

/**
 * Read-side access to the list, shared by Memtable and MemtableIterator (not exported, so the
 * Memtable API stays exactly the documented one). Any thread.
 */
class ArenaView {
  /** Int32 view of the whole buffer: header slots, node headers and next-pointers. */
  readonly slots: Int32Array;
  /** Byte view of the whole buffer: keys and values; what key() and value() slice. */
  readonly bytes: Uint8Array;
  /** The same bytes as a Buffer, for Buffer#compare with ranges (no subarray allocation). */
  readonly arena: Buffer;

  /**
   * The search target's user key, copied to 4-byte alignment so it compares a word at a time
   * against node keys (which start 4-byte aligned). Keys often share long prefixes (zero-padded
   * numbers, table prefixes), and a word per step cuts a search's compare loop ~4x.
   */
  private readonly targetWords = new Int32Array(PREPARED_KEY_BYTES_MAX / 4);
  private readonly targetBytes = new Uint8Array(this.targetWords.buffer);

  constructor(buffer: SharedArrayBuffer) {
    this.slots = new Int32Array(buffer);
    this.bytes = new Uint8Array(buffer);
    this.arena = Buffer.from(buffer);
  }

  /** Copies target as the word-compare target; false when it is too long (use the byte path). */
  prepare(target: Uint8Array, targetBytes: number): boolean {
    if (targetBytes > PREPARED_KEY_BYTES_MAX) return false;
    const out = this.targetBytes;
    for (let i = 0; i < targetBytes; i++) out[i] = target[i];
    return true;
  }

  /** compareUserKey against the prepared target (prepare() returned true for it). */
  compareUserKeyPrepared(node: number, targetBytes: number): number {
    const slots = this.slots;
    const n = node >> 2;
    const nodeBytes = slots[n + NODE_USER_KEY_BYTES];
    const start = node + NODE_HEADER_BYTES + (slots[n + NODE_HEIGHT_AND_KIND] & HEIGHT_MASK) * 4;
    const common = nodeBytes < targetBytes ? nodeBytes : targetBytes;
    const words = common >>> 2;
    const first = start >> 2;
    const targetWords = this.targetWords;
    let w = 0;
    while (w < words && slots[first + w] === targetWords[w]) w++;
    // The first differing byte is in word w, or in the tail past the last whole word.
    const bytes = this.bytes;
    const target = this.targetBytes;
    for (let i = w * 4; i < common; i++) {
      const d = bytes[start + i] - target[i];
      if (d !== 0) return d;
    }
    return nodeBytes - targetBytes;
  }

  /** nodeBefore against the prepared target. */
  nodeBeforePrepared(node: number, targetBytes: number, sequence: number, kind: number): boolean {
    const c = this.compareUserKeyPrepared(node, targetBytes);
    if (c !== 0) return c < 0;
    const nodeSequence = this.nodeSequence(node);
    if (nodeSequence !== sequence) return nodeSequence > sequence;
    return (this.slots[(node >> 2) + NODE_HEIGHT_AND_KIND] >>> KIND_SHIFT) > kind;
  }

  /** The first node >= (user key, sequence, kind), or 0. */
  findGreaterOrEqual(target: Uint8Array, targetStart: number, targetBytes: number, sequence: number, kind: number): number {
    if (targetStart === 0 && this.prepare(target, targetBytes)) return this.findGreaterOrEqualPrepared(targetBytes, sequence, kind);
    const slots = this.slots;
    let x = HEAD_NODE_OFFSET;
    // Why Atomics: the writer raises the height concurrently.
    let level = Atomics.load(slots, SLOT_LIST_HEIGHT) - 1;
    for (;;) {
      // Why Atomics: the acquire side of the writer's publication (step 5).
      const next = Atomics.load(slots, (x >> 2) + NODE_NEXT + level);
      if (next !== 0 && this.nodeBefore(next, target, targetStart, targetBytes, sequence, kind)) {
        x = next;
      } else if (level === 0) {
        return next;
      } else {
        level--;
      }
    }
  }

  private findGreaterOrEqualPrepared(targetBytes: number, sequence: number, kind: number): number {
    const slots = this.slots;
    let x = HEAD_NODE_OFFSET;
    // Why Atomics: the writer raises the height concurrently.
    let level = Atomics.load(slots, SLOT_LIST_HEIGHT) - 1;
    for (;;) {
      // Why Atomics: the acquire side of the writer's publication (step 5).
      const next = Atomics.load(slots, (x >> 2) + NODE_NEXT + level);
      if (next !== 0 && this.nodeBeforePrepared(next, targetBytes, sequence, kind)) {
        x = next;
      } else if (level === 0) {
        return next;
      } else {
        level--;
      }
    }
  }

  /** The last node that sorts before node, or HEAD_NODE_OFFSET when there is none. */
  findLessThan(node: number): number {
    const slots = this.slots;
    const n = node >> 2;
    const keyStart = node + NODE_HEADER_BYTES + (slots[n + NODE_HEIGHT_AND_KIND] & HEIGHT_MASK) * 4;
    const userKeyBytes = slots[n + NODE_USER_KEY_BYTES];
    const sequence = this.nodeSequence(node);
    const kind = slots[n + NODE_HEIGHT_AND_KIND] >>> KIND_SHIFT;
    let x = HEAD_NODE_OFFSET;
    // Why Atomics: the writer raises the height concurrently.
    let level = Atomics.load(slots, SLOT_LIST_HEIGHT) - 1;
    for (;;) {
      // Why Atomics: the acquire side of the writer's publication (step 5).
      const next = Atomics.load(slots, (x >> 2) + NODE_NEXT + level);
      if (next !== 0 && this.nodeBefore(next, this.bytes, keyStart, userKeyBytes, sequence, kind)) {
        x = next;
      } else if (level === 0) {
        return x;
      } else {
        level--;
      }
    }
  }

  /** The last node in the list, or 0 when empty. */
  findLast(): number {
    const slots = this.slots;
    let x = HEAD_NODE_OFFSET;
    let level = Atomics.load(slots, SLOT_LIST_HEIGHT) - 1;
    for (;;) {
      // Why Atomics: the acquire side of the writer's publication (step 5).
      const next = Atomics.load(slots, (x >> 2) + NODE_NEXT + level);
      if (next !== 0) {
        x = next;
      } else if (level === 0) {
        return x === HEAD_NODE_OFFSET ? 0 : x;
      } else {
        level--;
      }
    }
  }

  /** The node after node at level 0, or 0. */
  nextNode(node: number): number {
    // Why Atomics: the acquire side of the writer's publication (step 5).
    return Atomics.load(this.slots, (node >> 2) + NODE_NEXT);
  }

  /** First node, or 0. */
  firstNode(): number {
    return this.nextNode(HEAD_NODE_OFFSET);
  }

  /** Byte offset of node's internal key. */
  keyStart(node: number): number {
    return node + NODE_HEADER_BYTES + (this.slots[(node >> 2) + NODE_HEIGHT_AND_KIND] & HEIGHT_MASK) * 4;
  }

  /** View of node's internal key. */
  keyView(node: number): Uint8Array {
    const start = this.keyStart(node);
    return this.bytes.subarray(start, start + this.slots[(node >> 2) + NODE_USER_KEY_BYTES] + TRAILER_BYTES);
  }

  /** View of node's value. */
  valueView(node: number): Uint8Array {
    const n = node >> 2;
    const start = this.keyStart(node) + this.slots[n + NODE_USER_KEY_BYTES] + TRAILER_BYTES;
    return this.bytes.subarray(start, start + this.slots[n + NODE_VALUE_BYTES]);
  }

  /** True when node sorts strictly before the target (user key, sequence, kind). */
  nodeBefore(node: number, target: Uint8Array, targetStart: number, targetBytes: number, sequence: number, kind: number): boolean {
    const c = this.compareUserKey(node, target, targetStart, targetBytes);
    if (c !== 0) return c < 0;
    const nodeSequence = this.nodeSequence(node);
    if (nodeSequence !== sequence) return nodeSequence > sequence;
    return (this.slots[(node >> 2) + NODE_HEIGHT_AND_KIND] >>> KIND_SHIFT) > kind;
  }

  /** Sign of node's user key versus target[targetStart, targetStart + targetBytes). */
  compareUserKey(node: number, target: Uint8Array, targetStart: number, targetBytes: number): number {
    const slots = this.slots;
    const n = node >> 2;
    const nodeBytes = slots[n + NODE_USER_KEY_BYTES];
    const start = node + NODE_HEADER_BYTES + (slots[n + NODE_HEIGHT_AND_KIND] & HEIGHT_MASK) * 4;
    const common = nodeBytes < targetBytes ? nodeBytes : targetBytes;
    const loopEnd = common < COMPARE_LOOP_BYTES_MAX ? common : COMPARE_LOOP_BYTES_MAX;
    const bytes = this.bytes;
    for (let i = 0; i < loopEnd; i++) {
      const d = bytes[start + i] - target[targetStart + i];
      if (d !== 0) return d;
    }
    if (common > loopEnd) {
      // The first loopEnd bytes are equal, so comparing the remainders decides.
      return this.arena.compare(target, targetStart + loopEnd, targetStart + targetBytes, start + loopEnd, start + nodeBytes);
    }
    return nodeBytes - targetBytes;
  }

  nodeSequence(node: number): number {
    const n = node >> 2;
    return this.slots[n + NODE_SEQUENCE_HIGH] * TWO_POW_32 + (this.slots[n + NODE_SEQUENCE_LOW] >>> 0);
  }
}

export class Memtable {
  readonly buffer: SharedArrayBuffer;
  private readonly view: ArenaView;
  /** Same array as view.slots (hot path shorthand). */
  private readonly slots: Int32Array;
  /**
   * Writer-only: the splice of the last add() (one node reference per level, the last node
   * before the key at that level), kept as a finger for the next add (see findSplice).
   */
  private readonly splice = new Int32Array(HEIGHT_MAX);
  /** Writer-only: the node the last add() linked, or 0. */
  private lastAdded = 0;
  /** Int32 index of the key filter's first word, and its size in bits (set by create/attach). */
  private bloomStart = 0;
  private bloomBits = 0;

  private constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.view = new ArenaView(buffer);
    this.slots = this.view.slots;
  }

  /** Allocates a new, empty memtable with an arena of arenaBytes (rounded up to 4) bytes. */
  static create(arenaBytes: number): Memtable {
    assert(Number.isSafeInteger(arenaBytes) && arenaBytes >= 0, 'memtable arenaBytes must be a non-negative integer');
    assert(arenaBytes <= ARENA_BYTES_MAX, `memtable arenaBytes must be <= ${ARENA_BYTES_MAX}`);
    const capacityBytes = align4(arenaBytes);
    return Memtable.initialize(new SharedArrayBuffer(Memtable.bufferBytes(capacityBytes)), capacityBytes);
  }

  /** The buffer size create(arenaBytes) allocates; a buffer of this size can be reused for it. */
  static bufferBytes(arenaBytes: number): number {
    const capacityBytes = align4(arenaBytes);
    return ARENA_OFFSET + capacityBytes + bloomWordsFor(capacityBytes) * 4;
  }

  /**
   * An empty memtable over a buffer that held an earlier one (Memtable.bufferBytes(arenaBytes)
   * long). Why reuse: Node keeps a SharedArrayBuffer that reached another thread alive as long
   * as that thread lives, so a fresh buffer per memtable grows the process by one write buffer
   * per rotation, forever (measured: 4 MiB per buffer, never returned).
   * REQUIRES: no thread reads the old memtable any more (the caller's thread has released it).
   * Only the header, head node and key filter are cleared: nodes are written whole before
   * they are linked, so stale arena bytes are never reachable.
   */
  static reuse(buffer: SharedArrayBuffer, arenaBytes: number): Memtable {
    const capacityBytes = align4(arenaBytes);
    assert(buffer.byteLength === Memtable.bufferBytes(capacityBytes), 'memtable reuse: buffer size does not match arenaBytes');
    const words = new Int32Array(buffer);
    // Magic first, so a reader that still (wrongly) held the buffer fails attach() meanwhile.
    Atomics.store(words, SLOT_MAGIC, 0);
    words.fill(0, 1, ARENA_OFFSET >> 2);
    words.fill(0, (ARENA_OFFSET + capacityBytes) >> 2);
    return Memtable.initialize(buffer, capacityBytes);
  }

  private static initialize(buffer: SharedArrayBuffer, capacityBytes: number): Memtable {
    const bloomWords = bloomWordsFor(capacityBytes);
    const table = new Memtable(buffer);
    const slots = table.slots;
    // Plain stores: nobody else can see the buffer until create() returns it.
    slots[SLOT_FORMAT_VERSION] = MEMTABLE_FORMAT_VERSION;
    slots[SLOT_CAPACITY_BYTES] = capacityBytes;
    slots[SLOT_USED_BYTES] = 0;
    slots[SLOT_ENTRY_COUNT] = 0;
    slots[SLOT_LIST_HEIGHT] = 1;
    slots[SLOT_RANDOM_STATE] = ((Math.random() * TWO_POW_32) >>> 0) || 0x9e3779b9;
    slots[SLOT_BLOOM_WORDS] = bloomWords;
    table.bloomStart = (ARENA_OFFSET + capacityBytes) >> 2;
    table.bloomBits = bloomWords * 32;
    const head = HEAD_NODE_OFFSET >> 2;
    slots[head + NODE_HEIGHT_AND_KIND] = HEIGHT_MAX;
    // Magic last, so a half-initialized buffer never passes attach().
    Atomics.store(slots, SLOT_MAGIC, MEMTABLE_MAGIC);
    return table;
  }

  /** Another thread's view of a memtable made by create(). */
  static attach(buffer: SharedArrayBuffer): Memtable {
    assert(buffer instanceof SharedArrayBuffer, 'memtable attach needs a SharedArrayBuffer');
    assert(buffer.byteLength >= ARENA_OFFSET, 'memtable buffer is too small');
    const table = new Memtable(buffer);
    const slots = table.slots;
    assert(slots[SLOT_MAGIC] === MEMTABLE_MAGIC, 'memtable buffer has a bad magic');
    assert(slots[SLOT_FORMAT_VERSION] === MEMTABLE_FORMAT_VERSION, 'memtable buffer has an unknown format version');
    assert(slots[SLOT_BLOOM_WORDS] === bloomWordsFor(slots[SLOT_CAPACITY_BYTES]), 'memtable key filter size does not match its capacity');
    assert(ARENA_OFFSET + slots[SLOT_CAPACITY_BYTES] + slots[SLOT_BLOOM_WORDS] * 4 === buffer.byteLength, 'memtable capacity does not match the buffer');
    table.bloomStart = (ARENA_OFFSET + slots[SLOT_CAPACITY_BYTES]) >> 2;
    table.bloomBits = slots[SLOT_BLOOM_WORDS] * 32;
    return table;
  }

  /**
   * Upper bound of the arena bytes one entry takes: a HEIGHT_MAX node with its internal key and
   * value, padded. add() refuses an entry unless this many bytes are free, so
   * create(entryBytesMax(k, v)) makes a memtable that holds exactly one such entry.
   */
  static entryBytesMax(userKeyBytes: number, valueBytes: number): number {
    assert(Number.isSafeInteger(userKeyBytes) && userKeyBytes >= 0 && userKeyBytes <= KEY_BYTES_MAX, 'memtable key too large');
    assert(Number.isSafeInteger(valueBytes) && valueBytes >= 0 && valueBytes <= VALUE_BYTES_MAX, 'memtable value too large');
    return nodeBytes(HEIGHT_MAX, userKeyBytes, valueBytes);
  }

  // ---------------------------------------------------------------- writer (one thread)

  /**
   * Inserts one entry. Returns false, changing nothing, when the arena lacks
   * entryBytesMax(userKey.length, value.length) free bytes.
   * REQUIRES: called from the single writer thread; sequence unique within this memtable.
   */
  add(sequence: number, kind: number, userKey: Uint8Array, value: Uint8Array): boolean {
    const slots = this.slots;
    // Plain reads of writer-owned slots: only this thread ever stores them.
    assert(slots[SLOT_IMMUTABLE] === 0, 'memtable is immutable');
    assert(Number.isSafeInteger(sequence) && sequence >= 0, 'memtable sequence must be a safe non-negative integer');
    assert(kind === EntryKind.Put || kind === EntryKind.Delete, 'memtable kind must be Put or Delete');
    const userKeyBytes = userKey.length;
    const valueBytes = value.length;
    assert(userKeyBytes <= KEY_BYTES_MAX, 'memtable key too large');
    assert(valueBytes <= VALUE_BYTES_MAX, 'memtable value too large');

    // Step 1: room for the worst case, or refuse.
    const usedBytes = slots[SLOT_USED_BYTES];
    const capacityBytes = slots[SLOT_CAPACITY_BYTES];
    if (usedBytes + nodeBytes(HEIGHT_MAX, userKeyBytes, valueBytes) > capacityBytes) return false;

    // Step 2: the splice. Plain reads of next-pointers: only this thread stores them.
    const splice = this.splice;
    const listHeight = slots[SLOT_LIST_HEIGHT];
    const x = this.findSplice(userKey, sequence, kind, listHeight);
    // Sequences are unique, so an equal (user key, sequence) can only sit right before the
    // splice point (when its kind sorts first) or right after it.
    const successor = slots[(x >> 2) + NODE_NEXT];
    assert(
      !this.sameUserKeyAndSequence(successor, userKey, sequence) && !this.sameUserKeyAndSequence(x, userKey, sequence),
      'memtable add: duplicate internal key (sequence reused for the same user key)',
    );

    // Step 3: height; raise the list height before linking so searches can reach the node.
    const height = this.randomHeight();
    if (height > listHeight) {
      for (let level = listHeight; level < height; level++) splice[level] = HEAD_NODE_OFFSET;
      // Why Atomics: readers load the height to pick their starting level.
      Atomics.store(slots, SLOT_LIST_HEIGHT, height);
    }

    // Step 4: write the whole node with plain stores; it is unreachable until step 5.
    const node = ARENA_OFFSET + usedBytes;
    const size = nodeBytes(height, userKeyBytes, valueBytes);
    const n = node >> 2;
    slots[n + NODE_USER_KEY_BYTES] = userKeyBytes;
    slots[n + NODE_VALUE_BYTES] = valueBytes;
    slots[n + NODE_SEQUENCE_LOW] = sequence % TWO_POW_32; // ToInt32 keeps the low 32 bits
    slots[n + NODE_SEQUENCE_HIGH] = Math.floor(sequence / TWO_POW_32);
    slots[n + NODE_HEIGHT_AND_KIND] = height | (kind << KIND_SHIFT);
    for (let level = 0; level < height; level++) {
      slots[n + NODE_NEXT + level] = slots[(splice[level] >> 2) + NODE_NEXT + level];
    }
    const keyStart = node + NODE_HEADER_BYTES + height * 4;
    const bytes = this.view.bytes;
    bytes.set(userKey, keyStart);
    writeTrailer(bytes, keyStart + userKeyBytes, sequence, kind as EntryKind);
    if (valueBytes > 0) bytes.set(value, keyStart + userKeyBytes + TRAILER_BYTES);
    assert(keyStart + userKeyBytes + TRAILER_BYTES + valueBytes <= node + size, 'memtable node overflow');
    assert(node + size <= ARENA_OFFSET + capacityBytes, 'memtable arena overflow');
    this.addToFilter(userKey);

    // Why Atomics: usedBytes is read by other threads (flush decisions, stats).
    Atomics.store(slots, SLOT_USED_BYTES, usedBytes + size);

    // Step 5: publish bottom-up. Why Atomics: this sequentially consistent store is the
    // release that makes the node's bytes (written above) visible to any reader that
    // Atomics.loads this pointer. Level 0 first, so the entry is in the full list before
    // any express lane can lead to it.
    for (let level = 0; level < height; level++) {
      Atomics.store(slots, (splice[level] >> 2) + NODE_NEXT + level, node);
    }
    // The finger: the new node precedes the next key of an ascending run at every level it has.
    for (let level = 0; level < height; level++) splice[level] = node;
    this.lastAdded = node;

    // Step 6: counters, after the links.
    const entryCount = slots[SLOT_ENTRY_COUNT];
    if (entryCount === 0) {
      this.storeSequenceBounds(sequence, sequence);
    } else {
      const smallest = this.loadSequence(SLOT_SMALLEST_SEQUENCE_LOW, SLOT_SMALLEST_SEQUENCE_HIGH);
      const largest = this.loadSequence(SLOT_LARGEST_SEQUENCE_LOW, SLOT_LARGEST_SEQUENCE_HIGH);
      if (sequence < smallest || sequence > largest) {
        this.storeSequenceBounds(Math.min(smallest, sequence), Math.max(largest, sequence));
      }
    }
    // Why Atomics: readers treat entryCount as "at least this many entries are linked".
    Atomics.store(slots, SLOT_ENTRY_COUNT, entryCount + 1);
    return true;
  }

  /** Seals the memtable: add() asserts afterwards. Writer thread only. */
  markImmutable(): void {
    // Why Atomics: readers poll isImmutable to decide when the table may be flushed.
    Atomics.store(this.slots, SLOT_IMMUTABLE, 1);
  }

  // ---------------------------------------------------------------- readers (any thread)

  get isImmutable(): boolean {
    // Why Atomics: set by the writer thread.
    return Atomics.load(this.slots, SLOT_IMMUTABLE) !== 0;
  }

  /** Arena bytes allocated to entries (excludes the header and the head node). */
  get usedBytes(): number {
    // Why Atomics: the writer bumps it on every add.
    return Atomics.load(this.slots, SLOT_USED_BYTES);
  }

  /** Arena bytes available to entries in total; fixed at create(). */
  get capacityBytes(): number {
    return this.slots[SLOT_CAPACITY_BYTES];
  }

  /** At least this many entries are linked (the count is published after the links). */
  get entryCount(): number {
    // Why Atomics: the writer bumps it on every add.
    return Atomics.load(this.slots, SLOT_ENTRY_COUNT);
  }

  /** Smallest sequence added so far; 0 when empty. */
  get smallestSequence(): number {
    return this.readSequenceBound(SLOT_SMALLEST_SEQUENCE_LOW, SLOT_SMALLEST_SEQUENCE_HIGH);
  }

  /** Largest sequence added so far; 0 when empty. */
  get largestSequence(): number {
    return this.readSequenceBound(SLOT_LARGEST_SEQUENCE_LOW, SLOT_LARGEST_SEQUENCE_HIGH);
  }

  /**
   * The newest entry for userKey with sequence <= snapshotSequence, Delete entries included
   * (kind tells). The value is a copy, safe to hand to users.
   */
  get(userKey: Uint8Array, snapshotSequence: number): LookupResult | undefined {
    if (!this.mayContain(userKey)) return undefined;
    const userKeyBytes = userKey.length;
    const node = this.view.findGreaterOrEqual(userKey, 0, userKeyBytes, snapshotSequence, KIND_SEARCH);
    if (node === 0 || this.view.compareUserKey(node, userKey, 0, userKeyBytes) !== 0) return undefined;
    const n = node >> 2;
    const slots = this.slots;
    const valueStart = node + NODE_HEADER_BYTES + (slots[n + NODE_HEIGHT_AND_KIND] & HEIGHT_MASK) * 4 + userKeyBytes + TRAILER_BYTES;
    const valueBytes = slots[n + NODE_VALUE_BYTES];
    const value = Buffer.allocUnsafe(valueBytes);
    this.view.arena.copy(value, 0, valueStart, valueStart + valueBytes);
    return { kind: slots[n + NODE_HEIGHT_AND_KIND] >>> KIND_SHIFT, sequence: this.view.nodeSequence(node), value };
  }

  /**
   * An iterator over a live view: entries added after it was made may or may not be seen.
   * key() is the INTERNAL key and key()/value() are views into the shared arena, never
   * modified once published and valid as long as this memtable's buffer is referenced.
   */
  iterator(): InternalIterator {
    return new MemtableIterator(this.view);
  }

  /**
   * Writer only: fills splice[0 .. listHeight) with the last node before (userKey, sequence,
   * kind) at each level; returns splice[0].
   *
   * When the key sorts after the last one added (an ascending run: fillseq, or a group the WAL
   * worker sorted), the previous splice is a finger: every splice[l] still precedes the key,
   * and it is still the LAST such node at every level from the lowest L whose successor does
   * not precede the key (if level l's successor is at or past the key, so is level l+1's, as
   * level l+1 is a sublist). So the search climbs from level 0 to L and descends from
   * splice[L], touching O(log gap) nodes instead of O(log n) from the head.
   */
  private findSplice(userKey: Uint8Array, sequence: number, kind: number, listHeight: number): number {
    const slots = this.slots;
    const view = this.view;
    const splice = this.splice;
    const userKeyBytes = userKey.length;
    if (!view.prepare(userKey, userKeyBytes)) return this.findSpliceBytes(userKey, sequence, kind, listHeight);
    let level = listHeight - 1;
    let x = HEAD_NODE_OFFSET;
    const last = this.lastAdded;
    // Until this add links its node, splice describes this key, not lastAdded's: no finger.
    this.lastAdded = 0;
    if (last !== 0 && view.nodeBeforePrepared(last, userKeyBytes, sequence, kind)) {
      let finger = 0;
      while (finger < listHeight) {
        const next = slots[(splice[finger] >> 2) + NODE_NEXT + finger];
        if (next === 0 || !view.nodeBeforePrepared(next, userKeyBytes, sequence, kind)) break;
        finger++;
      }
      if (finger < listHeight) {
        // Levels finger and above keep their splice; search below it from splice[finger].
        x = splice[finger];
        level = finger - 1;
      }
    }
    for (; level >= 0; level--) {
      for (;;) {
        const next = slots[(x >> 2) + NODE_NEXT + level];
        if (next !== 0 && view.nodeBeforePrepared(next, userKeyBytes, sequence, kind)) x = next;
        else break;
      }
      splice[level] = x;
    }
    return splice[0];
  }

  /** findSplice for keys too long to prepare: a plain search from the head, byte compares. */
  private findSpliceBytes(userKey: Uint8Array, sequence: number, kind: number, listHeight: number): number {
    const slots = this.slots;
    const splice = this.splice;
    this.lastAdded = 0;
    let x = HEAD_NODE_OFFSET;
    for (let level = listHeight - 1; level >= 0; level--) {
      for (;;) {
        const next = slots[(x >> 2) + NODE_NEXT + level];
        if (next !== 0 && this.view.nodeBefore(next, userKey, 0, userKey.length, sequence, kind)) x = next;
        else break;
      }
      splice[level] = x;
    }
    return x;
  }

  /** False only when no entry for userKey has been added (the key filter; see the header). */
  mayContain(userKey: Uint8Array): boolean {
    return this.probeFilter(userKey, false);
  }

  /** Writer only: sets userKey's filter bits. */
  private addToFilter(userKey: Uint8Array): void {
    this.probeFilter(userKey, true);
  }

  /**
   * Visits userKey's BLOOM_PROBES filter bits (double hashing). set: sets each bit, with a plain
   * read-modify-write (this thread is the only writer of the filter). Otherwise tests them with
   * plain loads (bits only go 0 -> 1, and the ones that matter were published with the node)
   * and returns false at the first clear one.
   */
  private probeFilter(userKey: Uint8Array, set: boolean): boolean {
    const slots = this.slots;
    const bits = this.bloomBits;
    let h = keyHash(userKey);
    const delta = ((h >>> 17) | (h << 15)) >>> 0;
    for (let i = 0; i < BLOOM_PROBES; i++) {
      const bit = h % bits;
      const word = this.bloomStart + (bit >>> 5);
      const mask = 1 << (bit & 31);
      if (set) slots[word] |= mask;
      else if ((slots[word] & mask) === 0) return false;
      h = (h + delta) >>> 0;
    }
    return true;
  }

  /** Writer only: true when node is a real node with this user key and sequence. */
  private sameUserKeyAndSequence(node: number, userKey: Uint8Array, sequence: number): boolean {
    if (node === 0 || node === HEAD_NODE_OFFSET) return false;
    return this.view.nodeSequence(node) === sequence && this.view.compareUserKey(node, userKey, 0, userKey.length) === 0;
  }

  /** xorshift32; two bits per level, so one draw covers HEIGHT_MAX - 1 coin flips of p = 1/4. */
  private randomHeight(): number {
    let s = this.slots[SLOT_RANDOM_STATE];
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    this.slots[SLOT_RANDOM_STATE] = s;
    let height = 1;
    while (height < HEIGHT_MAX && (s & 3) === 0) {
      height++;
      s >>>= 2;
    }
    return height;
  }

  /** Writer only: a plain read of a sequence bound (only the writer stores them). */
  private loadSequence(lowSlot: number, highSlot: number): number {
    return this.slots[highSlot] * TWO_POW_32 + (this.slots[lowSlot] >>> 0);
  }

  /** Writer only: updates both bounds inside the seqlock. */
  private storeSequenceBounds(smallest: number, largest: number): void {
    const slots = this.slots;
    const version = slots[SLOT_SEQUENCE_VERSION];
    // Why Atomics (all six stores): seq-cst ordering makes the odd version visible before
    // the halves change and the halves visible before the even version.
    Atomics.store(slots, SLOT_SEQUENCE_VERSION, version + 1);
    Atomics.store(slots, SLOT_SMALLEST_SEQUENCE_LOW, smallest % TWO_POW_32);
    Atomics.store(slots, SLOT_SMALLEST_SEQUENCE_HIGH, Math.floor(smallest / TWO_POW_32));
    Atomics.store(slots, SLOT_LARGEST_SEQUENCE_LOW, largest % TWO_POW_32);
    Atomics.store(slots, SLOT_LARGEST_SEQUENCE_HIGH, Math.floor(largest / TWO_POW_32));
    Atomics.store(slots, SLOT_SEQUENCE_VERSION, version + 2);
  }

  /** Any thread: reads one bound consistently, retrying while the writer is inside the seqlock. */
  private readSequenceBound(lowSlot: number, highSlot: number): number {
    const slots = this.slots;
    for (let spin = 0; spin < SEQLOCK_SPINS_MAX; spin++) {
      // Why Atomics: seqlock read side; see storeSequenceBounds.
      const before = Atomics.load(slots, SLOT_SEQUENCE_VERSION);
      if ((before & 1) !== 0) continue;
      const low = Atomics.load(slots, lowSlot);
      const high = Atomics.load(slots, highSlot);
      if (Atomics.load(slots, SLOT_SEQUENCE_VERSION) === before) return high * TWO_POW_32 + (low >>> 0);
    }
    assert(false, 'memtable sequence seqlock never settled (writer died mid-update?)');
  }
}

/** Walks a Memtable; see InternalIterator. One thread only (like any iterator object). */
class MemtableIterator implements InternalIterator {
  private readonly table: ArenaView;
  /** Current node reference; 0 when not valid. */
  private node = 0;
  private closed = false;
  private keyCache: Uint8Array | undefined;
  private valueCache: Uint8Array | undefined;

  constructor(table: ArenaView) {
    this.table = table;
  }

  valid(): boolean {
    return this.node !== 0;
  }

  seekToFirst(): void {
    this.moveTo(this.table.firstNode());
  }

  seekToLast(): void {
    this.moveTo(this.table.findLast());
  }

  seek(target: Uint8Array): void {
    assert(target.length >= TRAILER_BYTES, 'memtable seek target must be an internal key');
    const userKeyBytes = target.length - TRAILER_BYTES;
    const { sequence, kind } = readTrailer(target, userKeyBytes);
    this.moveTo(this.table.findGreaterOrEqual(target, 0, userKeyBytes, sequence, kind));
  }

  next(): void {
    assert(this.node !== 0, 'memtable iterator next() while not valid');
    this.moveTo(this.table.nextNode(this.node));
  }

  prev(): void {
    assert(this.node !== 0, 'memtable iterator prev() while not valid');
    const before = this.table.findLessThan(this.node);
    this.moveTo(before === HEAD_NODE_OFFSET ? 0 : before);
  }

  key(): Uint8Array {
    assert(this.node !== 0, 'memtable iterator key() while not valid');
    return (this.keyCache ??= this.table.keyView(this.node));
  }

  value(): Uint8Array {
    assert(this.node !== 0, 'memtable iterator value() while not valid');
    return (this.valueCache ??= this.table.valueView(this.node));
  }

  close(): void {
    this.closed = true;
    this.node = 0;
    this.keyCache = undefined;
    this.valueCache = undefined;
  }

  private moveTo(node: number): void {
    assert(!this.closed, 'memtable iterator used after close()');
    this.node = node;
    this.keyCache = undefined;
    this.valueCache = undefined;
  }
}
