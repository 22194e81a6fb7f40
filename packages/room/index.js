// sessiongate-room: the room's side of the sessiongate admission contract (docs/ADMISSION.md).
// `GatedRoom` is a Durable Object base class; everything else comes from ./core.js, which has
// no `cloudflare:workers` import (import `sessiongate-room/core` in Node).

import { DurableObject } from "cloudflare:workers";
import { Gate, isControl, isUpgrade, resolveOptions } from "./core.js";

export * from "./core.js";

/**
 * A Durable Object that only accepts WebSockets the sessiongate gate admitted. Extend it and
 * implement `onJoin`, `onMessage`, `onLeave`; configure it with `static sessiongate = {...}`.
 */
export class GatedRoom extends DurableObject {
  /** Options: an object, or a function of `env` returning one. */
  static sessiongate = {};
  #gate;

  constructor(ctx, env) {
    super(ctx, env);
    const options = { ...resolveOptions(this.constructor.sessiongate, env) };
    if (!options.tags && this.tags !== GatedRoom.prototype.tags) options.tags = (admission) => this.tags(admission);
    this.#gate = new Gate(ctx, env, options, {
      onJoin: (conn) => this.onJoin(conn.socket, conn.session, conn),
      onLeave: (conn, code, reason) => this.onLeave(conn.socket, conn, code, reason),
    });
  }

  /** The engine: admission, membership, alarms (see core.js). */
  get gate() {
    return this.#gate;
  }

  async fetch(request) {
    if (isControl(request)) return this.#gate.control(request);
    if (!isUpgrade(request)) return this.onRequest(request);
    const admission = await this.#gate.admit(request);
    if (admission instanceof Response) return admission;
    const { client, response } = await this.#gate.accept(admission);
    if (response) return response;
    return this.#gate.announce(new Response(null, { status: 101, webSocket: client }));
  }

  async webSocketMessage(ws, message) {
    const conn = this.#gate.receiving(ws);
    if (conn) await this.onMessage(ws, message, conn);
  }

  async webSocketClose(ws, code, reason, _wasClean) {
    this.#gate.closed(ws, code, reason);
  }

  async webSocketError(ws, _error) {
    this.#gate.errored(ws);
  }

  async alarm(_info) {
    await this.#gate.alarm();
    await this.onAlarm();
  }

  /** `[{ id, session }]` of every open socket, synchronously. */
  sessions() {
    return this.#gate.sessions();
  }

  /** Every open `Connection` (`id`, `session`, `socket`, `route`, `params`, `expiresAt`, `state`...). */
  connections() {
    return this.#gate.connections();
  }

  /** One open connection by its admission id. */
  connection(id) {
    return this.#gate.connection(id);
  }

  /** Sends `message` to every open socket except the ids in `except`; the number sent to. */
  broadcast(message, except = []) {
    let n = 0;
    for (const conn of this.#gate.connections()) if (!except.includes(conn.id) && conn.send(message)) n++;
    return n;
  }

  /** Closes every socket carrying revocation key id `key` (as a control request would); the count. */
  revoke(key, code, reason) {
    return this.#gate.revoke(key, code, reason);
  }

  // Hooks: override these.

  /** A socket was admitted and accepted. */
  onJoin(_socket, _session, _conn) {}
  /** A frame from an admitted socket whose session has not expired. */
  onMessage(_socket, _message, _conn) {}
  /** A socket left: closed by its peer, by an error, or by the room (expiry, revocation, revalidation). */
  onLeave(_socket, _conn, _code, _reason) {}
  /** A request that is neither an upgrade nor a control request (from your own Worker). */
  onRequest(_request) {
    return new Response("Not found", { status: 404 });
  }
  /** After every alarm (the gate owns the object's alarm: do not call `setAlarm` yourself). */
  onAlarm() {}
  /** Extra tags for an admitted socket (`ctx.getWebSockets(tag)`); at most 9 minus its revocation keys. */
  tags(_admission) {
    return [];
  }
}
