// Types for sessiongate-room/core (hand-written; test/types-test.ts uses them).
// The room's side of the sessiongate admission contract, docs/ADMISSION.md v1.

/** A projected session: only the gate's `expose` paths. */
export type Session = Record<string, unknown>;

/** What the gate sends with a forwarded upgrade (`x-sessiongate-admission`), once verified. */
export interface Admission<S = Session> {
  readonly v: 1;
  /** The room name the gate chose (what `idFromName` got). */
  readonly room: string;
  /** The connection id, chosen by the gate: `c` + 12 hex digits. */
  readonly id: string;
  /** The route's path pattern, e.g. `/ws/rooms/:room`. */
  readonly route: string;
  readonly params: Readonly<Record<string, string>>;
  readonly session: S;
  /** Unix ms; `null`: never expires by time. */
  readonly expires_at: number | null;
  /** Revocation key ids (64 hex digits each). */
  readonly revoke: readonly string[];
  /** Opaque; sent back to revalidate. Never show it to clients or logs. */
  readonly ticket: string;
  readonly iat: number;
  readonly exp: number;
  readonly nonce: string;
}

/** A control request from the gate (`x-sessiongate-control`), once verified. */
export interface Control {
  readonly v: 1;
  readonly op: "revoke" | (string & {});
  readonly key?: string;
  readonly iat: number;
  readonly exp: number;
  readonly nonce: string;
}

/** One secret, or a rotation list (the first signs revalidation requests, every one verifies). */
export type AdmissionKey = string | readonly string[];

export interface VerifyOptions {
  key: AdmissionKey | undefined;
  /** This object's name: refuse admissions for another room. Omitted: not checked. */
  room?: string;
  /** Seen nonces; default: one cache per isolate (`defaultNonces`). */
  nonces?: NonceCache;
  /** The clock (Unix ms), for tests. */
  now?: number | (() => number);
  /** Longest admission/control header accepted (default 16384). */
  maxBytes?: number;
}

/** A refused admission or control: `reason` (short, loggable) and `status` (401; 500 without a key). */
export declare class AdmissionError extends Error {
  constructor(reason: string, status?: number);
  readonly name: "AdmissionError";
  readonly reason: string;
  readonly status: 401 | 500;
}

/** Checks signature, `v`, freshness, nonce and room; throws an `AdmissionError` when refused. */
export declare function verifyAdmission<S = Session>(request: Request, options: VerifyOptions): Promise<Admission<S>>;
/** Checks a control request the same way (no room); unknown `op`s are returned for the caller. */
export declare function verifyControl(request: Request, options: Omit<VerifyOptions, "room">): Promise<Control>;

/** Seen nonces, each until its `exp`; bounded (`max`, default 10,000): full, it refuses. */
export declare class NonceCache {
  constructor(options?: { max?: number });
  readonly max: number;
  readonly size: number;
  add(nonce: string, exp: number, now?: number): "ok" | "seen" | "full";
  has(nonce: string, now?: number): boolean;
}
export declare const defaultNonces: NonceCache;

export declare function b64uEncode(bytes: ArrayBuffer | Uint8Array): string;
export declare function b64uDecode(text: string): Uint8Array | null;
export declare function keyList(key: AdmissionKey | undefined | null): string[];
/** `mac(label, text)` of the contract, with the first key. */
export declare function mac(key: AdmissionKey, label: string, text: string): Promise<string>;
/** Constant-time check against every key. */
export declare function verifyMac(key: AdmissionKey, label: string, text: string, signature: string | null): Promise<boolean>;

export declare const ADMISSION_HEADER: "x-sessiongate-admission";
export declare const CONTROL_HEADER: "x-sessiongate-control";
export declare const SIGNATURE_HEADER: "x-sessiongate-signature";
export declare const CONTROL_PATH: "/_sessiongate/control";
export declare const REVALIDATE_HEADER: "x-sessiongate-revalidate";
export declare const MAX_REVALIDATE_EVERY_SECONDS: 86400;
export declare const REVALIDATE_URL: "https://sessiongate.internal/_sessiongate/revalidate";
export declare const LABELS: Readonly<{
  admission: "sessiongate-admission-v1";
  control: "sessiongate-control-v1";
  revalidate: "sessiongate-revalidate-v1";
  revalidated: "sessiongate-revalidated-v1";
}>;
export declare const GATE_TAG: "sg";
export declare const MAX_TAGS: 10;
export declare const MAX_TAG_LENGTH: 256;
export declare const ATTACHMENT_BUDGET: 2048;
export declare const MAX_ADMISSION_BYTES: 16384;
export declare const MAX_LIFETIME_MS: 60000;
export declare const REVALIDATE_BATCH: 100;

/** `k:<key id>`, or `k:#<sha256 hex>` for ids that do not fit a tag. */
export declare function tagForKey(key: string): Promise<string>;
/** `["sg", "k:<id>"..., ...extra]`, at most 10 with `reserved`; keys that do not fit in `overflow`. */
export declare function buildTags(
  revoke?: readonly string[],
  extra?: readonly string[],
  options?: { reserved?: number },
): Promise<{ tags: string[]; overflow: string[] }>;

/** What a socket keeps across hibernation. */
export interface Attachment<S = Session, T = unknown> {
  id: string;
  session: S;
  expires_at: number | null;
  ticket: string;
  route: string;
  params: Record<string, string>;
  /** Revocation keys that did not fit the tags. */
  rk?: string[];
  /** The app's own state (`Connection.setState`). */
  state?: T;
}
export declare function attachmentFor<S>(admission: Admission<S>, overflow?: string[], state?: unknown): Attachment<S>;
export declare function attachmentSize(value: unknown): number;

export declare function isUpgrade(request: Request): boolean;
export declare function isControl(request: Request): boolean;

/** Options of `GatedRoom` (`static sessiongate`), `withSessiongate` and `Gate`. */
export interface GateOptions<Env = any> {
  /** The shared secret(s); default `env.ADMISSION_KEY`. Without one every admission gets 500. */
  key?: AdmissionKey | ((env: Env) => AdmissionKey | undefined);
  /** The service binding to the gate's Worker, for revalidation (default `"GATE"`). */
  gateBinding?: string;
  /** Ask the gate every N seconds whether the sockets' sessions still hold (default 60; 0: never). */
  revalidateSeconds?: number;
  /** Attachment budget in bytes (default 2048): an admission over it gets 500 and a log line. */
  maxAttachmentBytes?: number;
  /** Longest admission header accepted (default 16384). */
  maxAdmissionBytes?: number;
  /** Nonce cache size (default 10,000), or a cache of your own. */
  maxNonces?: number;
  nonces?: NonceCache;
  /** Extra tags for an admitted socket (GatedRoom: also the `tags()` method). */
  tags?: (admission: Admission) => string[] | Promise<string[]>;
  /** Where log entries go (default: one JSON line on console.log); `false`: nowhere. */
  log?: false | ((entry: Record<string, unknown>) => void);
  /** The clock (Unix ms), for tests. */
  now?: () => number;
  /** Makes `[client, server]` (default `new WebSocketPair()`), for tests. */
  createPair?: () => [WebSocket, WebSocket];
}

/** One admitted socket. `JSON.stringify(conn)` gives `{ id, session }` (never the ticket). */
export declare class Connection<S = Session, T = unknown> {
  private constructor();
  socket: WebSocket;
  readonly id: string;
  readonly session: S;
  readonly room: string | undefined;
  readonly route: string;
  readonly params: Readonly<Record<string, string>>;
  readonly expiresAt: number | null;
  /** Revocation key ids known in memory. */
  readonly keys: readonly string[];
  readonly closed: boolean;
  /** The app's own state, kept in the attachment (inside the budget). */
  readonly state: T | undefined;
  /** Throws a RangeError when the attachment would go over the budget. */
  setState(state: T | undefined): T | undefined;
  send(message: string | ArrayBuffer | ArrayBufferView): boolean;
  close(code?: number, reason?: string): void;
  toJSON(): { id: string; session: S };
}

export interface GateHooks<S = Session> {
  onJoin?(conn: Connection<S>): void | Promise<void>;
  onLeave?(conn: Connection<S>, code: number, reason: string): void | Promise<void>;
}

export interface GateAdapter {
  read?(ws: WebSocket): Attachment | null;
  write?(ws: WebSocket, record: Attachment): void;
}

/** The engine `GatedRoom` and `withSessiongate` delegate to. */
export declare class Gate<S = Session> {
  constructor(ctx: DurableObjectState, env: unknown, options?: GateOptions, hooks?: GateHooks<S>, adapter?: GateAdapter);
  readonly options: GateOptions;
  readonly nonces: NonceCache;
  /** `ctx.id.name`, or the room of the first admission when the runtime does not say. */
  readonly name: string | undefined;
  readonly size: number;
  now(): number;
  keys(): string[];
  load(): void;
  sessions(): Array<{ id: string; session: S }>;
  connections(): Connection<S>[];
  connection(id: string): Connection<S> | undefined;
  connectionOf(ws: WebSocket): Connection<S> | undefined;
  register(ws: WebSocket, record: Attachment<S>, keys: string[]): Connection<S>;
  admit(request: Request): Promise<Admission<S> | Response>;
  recordFor(admission: Admission<S>, overflow?: string[], extraBytes?: number): Attachment<S> | Response;
  accept(admission: Admission<S>): Promise<{ client: WebSocket; conn: Connection<S>; response?: undefined } | { response: Response; client?: undefined; conn?: undefined }>;
  setState(conn: Connection<S>, state: unknown): void;
  close(conn: Connection<S>, code?: number, reason?: string): boolean;
  forget(ws: WebSocket, code: number, reason: string): Connection<S> | undefined;
  closed(ws: WebSocket, code: number, reason: string): Connection<S> | undefined;
  errored(ws: WebSocket): Connection<S> | undefined;
  receiving(ws: WebSocket): Connection<S> | undefined;
  control(request: Request): Promise<Response>;
  revoke(key: string, code?: number, reason?: string): Promise<number>;
  schedule(): Promise<void>;
  alarm(): Promise<void>;
  revalidate(): Promise<number>;
  /** Whole seconds between revalidations as the room tells the gate; 0 when it does not say (no interval, one past a day, or no gate binding). */
  readonly revalidateEverySeconds: number;
  /** Sets `x-sessiongate-revalidate` on an accepting 101 when the room revalidates; returns the response. */
  announce(response: Response): Response;
}

export declare function resolveOptions<Env>(options: GateOptions<Env> | ((env: Env) => GateOptions<Env>) | undefined, env: Env): GateOptions<Env>;
