// Types for sessiongate-room (hand-written). Needs @cloudflare/workers-types (or wrangler types).

import { DurableObject } from "cloudflare:workers";
import type { Admission, Connection, Gate, GateOptions, Session } from "./core.js";

export * from "./core.js";

/**
 * A Durable Object that only accepts WebSockets the sessiongate gate admitted (docs/ADMISSION.md).
 * `S`: the projected session's shape; `T`: your per-socket state (`conn.setState`).
 */
export declare class GatedRoom<Env = unknown, S = Session, T = unknown> extends DurableObject<Env> {
  /** Options: an object, or a function of `env` returning one. */
  static sessiongate: GateOptions<any> | ((env: any) => GateOptions<any>);
  constructor(ctx: DurableObjectState, env: Env);
  /** The engine: admission, membership, alarms. */
  readonly gate: Gate<S>;

  fetch(request: Request): Promise<Response>;
  webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void>;
  webSocketClose(ws: WebSocket, code: number, reason: string, wasClean: boolean): Promise<void>;
  webSocketError(ws: WebSocket, error: unknown): Promise<void>;
  /** Expiry (4401 `session expired`) and revalidation; then `onAlarm`. The gate owns the alarm. */
  alarm(alarmInfo?: AlarmInvocationInfo): Promise<void>;

  /** `[{ id, session }]` of every open socket, synchronously (from memory, rebuilt once per wake). */
  sessions(): Array<{ id: string; session: S }>;
  /** Every open connection. */
  connections(): Connection<S, T>[];
  /** One open connection by its admission id. */
  connection(id: string): Connection<S, T> | undefined;
  /** Sends to every open socket except the ids in `except`; the number sent to. */
  broadcast(message: string | ArrayBuffer | ArrayBufferView, except?: readonly string[]): number;
  /** Closes every socket carrying revocation key id `key` (default 4401 `session revoked`); the count. */
  revoke(key: string, code?: number, reason?: string): Promise<number>;

  /** A socket was admitted and accepted. */
  onJoin(socket: WebSocket, session: S, conn: Connection<S, T>): void | Promise<void>;
  /** A frame from an admitted socket whose session has not expired. */
  onMessage(socket: WebSocket, message: string | ArrayBuffer, conn: Connection<S, T>): void | Promise<void>;
  /** A socket left (its peer, an error, expiry, revocation or revalidation); called once per socket. */
  onLeave(socket: WebSocket, conn: Connection<S, T>, code: number, reason: string): void | Promise<void>;
  /** A request that is neither an upgrade nor a control request (default 404). */
  onRequest(request: Request): Response | Promise<Response>;
  /** After every alarm. */
  onAlarm(): void | Promise<void>;
  /** Extra tags for an admitted socket (at most 9 with its revocation keys; keys overflow first). */
  tags(admission: Admission<S>): string[] | Promise<string[]>;
}
