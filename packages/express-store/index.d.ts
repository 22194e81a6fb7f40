// Types for sessiongate-store (hand-written; see test/types-test.ts for the check).
// Self-contained: no import from express-session, whose types are optional. The store class is
// shaped so that express-session's `store` option (its abstract Store class) accepts it.

import { EventEmitter } from 'node:events';

/** What express-session hands a store: any JSON-able object with a `cookie` object. */
export interface SessionLike {
  cookie: {
    /** The gate sets the KV TTL from this; null/absent = a browser-session cookie. */
    expires?: Date | string | null | boolean;
    [key: string]: any;
  };
  [key: string]: any;
}

export interface SessiongateStoreOptions {
  /** The gate's base URL, e.g. "https://gate.example.com" (https; plain http only for localhost). */
  url: string | URL;
  /** The gate's STORE_TOKEN secret, sent as `Authorization: Bearer <token>`. */
  token: string;
  /** Per attempt, in milliseconds. Default 2000. */
  timeoutMs?: number;
  /** Extra attempts after the first, on network errors, timeouts, 429 and 5xx. Default 2. */
  retries?: number;
  /** A touch writes when the gate's copy has lost more than this share of its lifetime. 0 <= touchShare < 1, default 0.1. */
  touchShare?: number;
  /** Defaults to the global fetch (Node 18+). */
  fetch?: (input: string, init?: any) => Promise<any>;
}

export type MirrorOptions = SessiongateStoreOptions;

export type SessiongateStoreErrorCode =
  | 'BAD_SID'
  | 'BAD_SESSION'
  | 'TOO_LARGE'
  | 'TIMEOUT'
  | 'NETWORK'
  | 'BAD_REQUEST'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'DISABLED'
  | 'METHOD_NOT_ALLOWED'
  | 'RATE_LIMITED'
  | 'UNAVAILABLE'
  | 'SERVER_ERROR'
  | 'REDIRECT'
  | 'HTTP_ERROR'
  | 'BAD_RESPONSE';

export declare class SessiongateStoreError extends Error {
  name: 'SessiongateStoreError';
  code: SessiongateStoreErrorCode;
  /** The gate's HTTP status, or undefined when it did not answer (or the call was refused locally). */
  status: number | undefined;
  /** Requests made: 0 when refused locally, up to retries + 1. */
  attempts: number;
}

/**
 * An express-session store whose storage is the sessiongate Worker's KV, through its store
 * endpoints. Every method takes a callback (express-session's way) or, without one, returns a
 * promise. `all`, `length` and `clear` do not exist: the endpoints address one session at a time.
 */
export declare class SessiongateStore extends EventEmitter {
  constructor(options: SessiongateStoreOptions);

  /** Calls back with null when the gate has no such session. */
  get(sid: string, callback: (err: any, session?: SessionLike | null) => void): void;
  get(sid: string): Promise<SessionLike | null>;

  /** Always writes. */
  set(sid: string, session: SessionLike, callback: (err?: any) => void): void;
  set(sid: string, session: SessionLike): Promise<void>;

  /** Throttled: writes only when the gate's copy needs a longer TTL (see README). */
  touch(sid: string, session: SessionLike, callback: (err?: any) => void): void;
  touch(sid: string, session: SessionLike): Promise<void>;

  /** Deletes at the gate and closes the session's open WebSockets. */
  destroy(sid: string, callback: (err?: any) => void): void;
  destroy(sid: string): Promise<void>;

  // From express-session's Store (or the built-in equivalent when express-session is absent).
  regenerate(req: any, callback: (err?: any) => any): void;
  load(sid: string, callback: (err: any, session?: any) => any): void;
  createSession(req: any, session: any): any;
}

/** The store protocol mirror() needs: get, set and destroy; touch and the rest are optional. */
export interface StoreLike {
  get(sid: string, callback: (err: any, session?: any) => void): any;
  set(sid: string, session: any, callback?: (err?: any) => void): any;
  destroy(sid: string, callback?: (err?: any) => void): any;
  touch?(sid: string, session: any, callback?: (err?: any) => void): any;
}

/** What mirror() adds to the wrapped store's type: the 'gateError' event. */
export interface MirrorEvents<S> {
  /** A gate failure with no callback to go to: a failed gate touch, or a gate destroy that failed when the wrapped store's destroy failed too. */
  on(event: 'gateError', listener: (err: SessiongateStoreError, op: 'touch' | 'destroy') => void): S;
  once(event: 'gateError', listener: (err: SessiongateStoreError, op: 'touch' | 'destroy') => void): S;
}

/**
 * Wraps an existing store: reads stay on it, set/touch/destroy go to it and then to the gate.
 * The result is the same store (a Proxy), usable as express-session's `store` option.
 */
export declare function mirror<S extends StoreLike>(store: S, options: MirrorOptions): S & MirrorEvents<S>;
