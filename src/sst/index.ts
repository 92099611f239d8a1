// Threads: all. The SST module's public surface; see format.ts for the file layout.

export { BlockCache, type BlockCacheStats } from './block-cache.js';
export { BloomFilter } from './bloom.js';
export { BLOOM_BITS_PER_KEY_DEFAULT, FORMAT_VERSION_CURRENT, FormatVersion, RESTART_INTERVAL_DEFAULT } from './format.js';
export { TableBuilder, type TableBuilderOptions, type TableProperties } from './table-builder.js';
export { TableReader, type VerifyReport } from './table-reader.js';
