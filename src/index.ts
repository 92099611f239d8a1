// Threads: the caller's thread. The package's public surface.
export { StemeDB, type StemeDBOptions } from './main/db.js';
export { StemeError, CorruptionError, type LevelErrorCode } from './common/errors.js';
export type { VerifyResult, Problem } from './tools/verify.js';
export type { RepairReport } from './tools/repair.js';
export { createAdminServer, adminHandler, prometheusMetrics, storageStats } from './main/admin.js';
