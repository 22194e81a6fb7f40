// Types for the ESM entry (index.mjs): the same names as index.cjs, see index.d.ts.
export {
  SessiongateStore,
  SessiongateStoreError,
  mirror,
  type SessionLike,
  type SessiongateStoreOptions,
  type MirrorOptions,
  type SessiongateStoreErrorCode,
  type StoreLike,
  type MirrorEvents,
} from './index.js';
