// ESM entry: the implementation is index.cjs (one copy of the code, one module instance
// whether an app requires or imports it); this file only re-exports it by name.
import cjs from './index.cjs';

export const { SessiongateStore, SessiongateStoreError, mirror } = cjs;
