// A compile-only check of index.d.ts / index.d.mts against @types/express-session. Not run by
// `npm test` (it needs typescript and @types/express-session, which this repo does not install);
// how to run it: see "Checking the types" in ../README.md.
import session from 'express-session';
import { SessiongateStore, SessiongateStoreError, mirror } from 'sessiongate-store';
import type { SessionLike, SessiongateStoreOptions } from 'sessiongate-store';

const options: SessiongateStoreOptions = { url: 'https://gate.example.com', token: 't'.repeat(32) };

// Accepted by express-session's `store` option, both ways.
const store = new SessiongateStore({ ...options, timeoutMs: 1500, retries: 1, touchShare: 0.2 });
session({ secret: 's', store, resave: false, saveUninitialized: false });

const mirrored = mirror(new session.MemoryStore(), options);
session({ secret: 's', store: mirrored, resave: false, saveUninitialized: false });
mirrored.all((err, all) => void [err, all]); // the wrapped store's own methods keep their types
mirrored.on('gateError', (err, op) => {
  const code: string = err.code;
  const which: 'touch' | 'destroy' = op;
  void [code, which];
});

// Callbacks and promises.
store.get('a'.repeat(32), (err, sess) => void [err, sess]);
const got: Promise<SessionLike | null> = store.get('a'.repeat(32));
const saved: Promise<void> = store.set('a'.repeat(32), { cookie: { expires: new Date() } });
store.destroy('a'.repeat(32), (err) => void err);
void [got, saved];

// Errors.
async function logout(): Promise<void> {
  try {
    await store.destroy('a'.repeat(32));
  } catch (err) {
    if (err instanceof SessiongateStoreError) {
      const status: number | undefined = err.status;
      const attempts: number = err.attempts;
      void [status, attempts, err.code === 'TIMEOUT'];
    }
  }
}
void logout;

// @ts-expect-error: a token is required
new SessiongateStore({ url: 'https://gate.example.com' });
// @ts-expect-error: mirror needs a store with get/set/destroy
mirror({ get() {} }, options);
