// Types for sessiongate-room/partyserver (hand-written). Needs partyserver 0.5.x.

import type { Connection as PartyConnection, Server } from "partyserver";
import type { Gate, GateOptions, Session } from "./core.js";

/** What `withSessiongate` adds to a partyserver `Server`. */
export interface SessiongateMembers<S = Session> {
  /** The engine: admission, membership, alarms. */
  readonly gate: Gate<S>;
  /** `[{ id, session }]` of every open socket the gate admitted, synchronously. */
  sessions(): Array<{ id: string; session: S }>;
  /** The verified session of a connection, whatever `connection.state` became since. */
  sessionOf(connection: PartyConnection | WebSocket): S | undefined;
  /** Closes every socket carrying revocation key id `key` (default 4401 `session revoked`); the count. */
  revoke(key: string, code?: number, reason?: string): Promise<number>;
}

/** `connection.state` as the gate sets it before `onConnect`. */
export interface GatedState<S = Session> {
  session: S;
  route: string;
  params: Record<string, string>;
  expiresAt: number | null;
}

type ServerConstructor = new (...args: any[]) => Server<any, any>;
type Options = GateOptions<any> | ((env: any) => GateOptions<any>);

/** A subclass of `Base` (partyserver's `Server` or a subclass) that only connects admitted sockets. */
export declare function withSessiongate<B extends ServerConstructor, S = Session>(
  Base: B,
  options?: Options,
): B & (new (...args: any[]) => SessiongateMembers<S>) & { sessiongate?: Options };

/** `withSessiongate(Server)`; options from `static sessiongate` and `env` (`ADMISSION_KEY`, `GATE`). */
export declare class GatedServer<
    Env extends Cloudflare.Env = Cloudflare.Env,
    S = Session,
    Props extends Record<string, unknown> = Record<string, unknown>,
  >
  extends Server<Env, Props>
  implements SessiongateMembers<S>
{
  static sessiongate?: Options;
  readonly gate: Gate<S>;
  sessions(): Array<{ id: string; session: S }>;
  sessionOf(connection: PartyConnection | WebSocket): S | undefined;
  revoke(key: string, code?: number, reason?: string): Promise<number>;
}
