// sessiongate-room/partyserver: put a partyserver `Server` behind the sessiongate gate.
//
// What it changes in partyserver (0.5.x), and why:
// * `fetch`: an upgrade without a valid admission is refused (401) before partyserver sees it;
//   `/_sessiongate/control` is answered here. An admitted upgrade reaches partyserver with `_pk`
//   set to the gate's connection id (a client-sent `_pk` is dropped) and without any
//   `x-partykit-*` header (partyserver reads props and the room name from those; behind the gate
//   they can only come from the client) or `x-sessiongate-*` header (the ticket stays out of
//   `ctx.request`).
// * `getConnectionTags`, `onConnect`, `onMessage`, `onClose`, `onError`, `alarm`: wrapped (on
//   the instance, so your overrides in a subclass still run, after the gate's part).
//   `connection.state` starts as `{ session, route, params, expiresAt }`; the gate's record
//   (with the revalidation ticket) sits next to partyserver's in the socket's attachment.

import { Server } from "partyserver";
import { Gate, buildTags, isControl, isUpgrade, resolveOptions } from "./core.js";

const SG = "__sg";

function nativeAttachment(ws) {
  try {
    return WebSocket.prototype.deserializeAttachment.call(ws);
  } catch {
    return null;
  }
}

function publicState(admission) {
  return { session: admission.session, route: admission.route, params: admission.params, expiresAt: admission.expires_at };
}

/**
 * `withSessiongate(Base, options)`: a subclass of partyserver's `Server` (or of a subclass of it)
 * whose connections are all admitted by the gate. `options` as `GatedRoom.sessiongate` (an
 * object, or a function of `env`).
 */
export function withSessiongate(Base, options = {}) {
  class Gated extends Base {
    #gate;
    #admissions = new WeakMap(); // forwarded Request -> { admission, record }
    #hibernating;

    constructor(ctx, env) {
      super(ctx, env);
      this.#hibernating = Boolean(resolveHibernate(this.constructor));
      this.#gate = new Gate(
        ctx,
        env,
        { ...resolveOptions(options, env), ...resolveOptions(this.constructor.sessiongate, env) },
        {},
        { read: (ws) => nativeAttachment(ws)?.[SG] ?? null },
      );
      const userTags = this.getConnectionTags;
      const userConnect = this.onConnect;
      const userMessage = this.onMessage;
      const userClose = this.onClose;
      const userError = this.onError;

      this.getConnectionTags = async (connection, ctx) => {
        const pending = this.#admissions.get(ctx?.request);
        if (!pending || connection.id !== pending.admission.id) {
          throw new Error("sessiongate: refusing a connection without a verified admission");
        }
        const extra = (await userTags.call(this, connection, ctx)) ?? [];
        const { tags, overflow } = await buildTags(pending.admission.revoke, extra, { reserved: 1 });
        if (overflow.length) pending.record.rk = overflow;
        connection.state = publicState(pending.admission);
        if (this.#hibernating) {
          // partyserver's hibernating accept writes its first attachment through this (an own
          // property it redefines right after): the gate's record rides along under `__sg`.
          const record = pending.record;
          connection.serializeAttachment = function (value) {
            WebSocket.prototype.serializeAttachment.call(this, { ...value, [SG]: record });
          };
        }
        return tags;
      };

      this.onConnect = async (connection, ctx) => {
        const pending = this.#admissions.get(ctx?.request);
        this.#admissions.delete(ctx?.request);
        if (!pending || connection.id !== pending.admission.id) {
          connection.close(1011, "no admission");
          return;
        }
        if (this.#hibernating && nativeAttachment(connection)?.[SG]?.id !== pending.admission.id) {
          this.#gate.log({ error: "partyserver's attachment layout changed: this version of sessiongate-room cannot keep sessions across hibernation" });
          connection.close(1011, "internal error");
          return;
        }
        this.#gate.register(connection, pending.record, [...new Set(pending.admission.revoke)]);
        await this.#gate.schedule();
        return userConnect.call(this, connection, ctx);
      };

      this.onMessage = (connection, message) => {
        if (!this.#gate.receiving(connection)) return;
        return userMessage.call(this, connection, message);
      };

      this.onClose = (connection, code, reason, wasClean) => {
        this.#gate.forget(connection, code, reason);
        return userClose.call(this, connection, code, reason, wasClean);
      };

      this.onError = (connection, error) => {
        this.#gate.errored(connection);
        return userError.call(this, connection, error);
      };
    }

    /** The engine (see core.js). */
    get gate() {
      return this.#gate;
    }

    async fetch(request) {
      if (isControl(request)) return this.#gate.control(request);
      if (!isUpgrade(request)) return super.fetch(request);
      const admission = await this.#gate.admit(request);
      if (admission instanceof Response) return admission;
      const record = this.#gate.recordFor(admission, [], 0);
      if (record instanceof Response) return record;
      const url = new URL(request.url);
      url.searchParams.delete("_pk");
      url.searchParams.set("_pk", admission.id);
      const headers = new Headers();
      for (const [name, value] of request.headers) {
        if (!name.startsWith("x-partykit-") && !name.startsWith("x-sessiongate-")) headers.append(name, value);
      }
      const forwarded = new Request(url, { method: request.method, headers });
      this.#admissions.set(forwarded, { admission, record });
      return this.#gate.announce(await super.fetch(forwarded));
    }

    async alarm(info) {
      await this.#gate.alarm();
      if (this.onAlarm !== Server.prototype.onAlarm) return super.alarm(info);
    }

    /** `[{ id, session }]` of every open socket the gate admitted, synchronously. */
    sessions() {
      return this.#gate.sessions();
    }

    /** The verified session of a connection (whatever `connection.state` became since). */
    sessionOf(connection) {
      return this.#gate.connectionOf(connection)?.session;
    }

    /** Closes every socket carrying revocation key id `key` (as a control request would); the count. */
    revoke(key, code, reason) {
      return this.#gate.revoke(key, code, reason);
    }
  }
  Object.defineProperty(Gated, "name", { value: `Gated${Base.name}` });
  return Gated;
}

function resolveHibernate(cls) {
  for (let c = cls; c; c = Object.getPrototypeOf(c)) {
    if (c.options?.hibernate !== undefined) return c.options.hibernate;
  }
  return false;
}

/** `withSessiongate(Server)`: options come from `env` (`ADMISSION_KEY`, `GATE`). */
export const GatedServer = withSessiongate(Server);

