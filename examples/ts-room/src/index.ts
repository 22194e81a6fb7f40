// Two Durable Objects that only ever see WebSockets the sessiongate gate admitted.
//
// ChatRoom (GatedRoom): speaks the frames of docs/PROTOCOL.md (welcome with every peer's
// session, join/leave, broadcast and direct send, `from` filled by the server).
// Cursors (partyserver's Server via GatedServer): shared cursors; `connection.id` is the gate's
// id and `connection.state.session` the verified session.

import { GatedRoom, type Connection } from "sessiongate-room";
import { GatedServer } from "sessiongate-room/partyserver";
import type { Connection as PartyConnection, ConnectionContext } from "partyserver";

export interface Env {
  ADMISSION_KEY: string;
  REVALIDATE_SECONDS?: string;
  GATE: Fetcher;
  ROOMS: DurableObjectNamespace;
  CURSORS: DurableObjectNamespace;
}

/** What the gate's `expose` lets through, e.g. expose = ["passport.user", "user.name", "user.roles"]. */
interface Session {
  passport?: { user?: string };
  user?: { name?: string; roles?: string[] };
}

const options = (env: Env) => ({ revalidateSeconds: Number(env.REVALIDATE_SECONDS ?? 60) });

export class ChatRoom extends GatedRoom<Env, Session> {
  static sessiongate = options;

  onJoin(socket: WebSocket, session: Session, conn: Connection<Session>) {
    const peers = this.sessions().filter((p) => p.id !== conn.id);
    socket.send(JSON.stringify({ type: "welcome", id: conn.id, session, peers }));
    this.broadcast(JSON.stringify({ type: "join", id: conn.id, session }), [conn.id]);
  }

  onMessage(socket: WebSocket, message: string | ArrayBuffer, conn: Connection<Session>) {
    let frame: { type?: string; to?: string; data?: unknown };
    try {
      frame = JSON.parse(typeof message === "string" ? message : new TextDecoder().decode(message));
    } catch {
      socket.send(JSON.stringify({ type: "error", reason: "not JSON" }));
      return;
    }
    const out = JSON.stringify({ type: "message", from: conn, data: frame.data ?? null });
    if (frame.type === "broadcast") this.broadcast(out, [conn.id]);
    else if (frame.type === "send" && typeof frame.to === "string" && this.connection(frame.to)) this.connection(frame.to)!.send(out);
    else socket.send(JSON.stringify({ type: "error", reason: "unknown frame" }));
  }

  onLeave(_socket: WebSocket, conn: Connection<Session>) {
    this.broadcast(JSON.stringify({ type: "leave", id: conn.id }));
  }
}

export class Cursors extends GatedServer<Env, Session> {
  static options = { hibernate: true };
  static sessiongate = options;

  onConnect(connection: PartyConnection<{ session: Session }>, _ctx: ConnectionContext) {
    const session = connection.state!.session;
    const peers = [...this.getConnections<{ session: Session }>()]
      .filter((c) => c.id !== connection.id)
      .map((c) => ({ id: c.id, session: c.state?.session }));
    connection.send(JSON.stringify({ type: "welcome", id: connection.id, session, peers }));
    this.broadcast(JSON.stringify({ type: "join", id: connection.id, session }), [connection.id]);
  }

  onMessage(connection: PartyConnection, message: string | ArrayBuffer) {
    if (typeof message !== "string") return;
    let at: { x?: unknown; y?: unknown };
    try {
      at = JSON.parse(message);
    } catch {
      return;
    }
    if (typeof at.x !== "number" || typeof at.y !== "number") return;
    const name = this.sessionOf(connection)?.user?.name ?? null;
    this.broadcast(JSON.stringify({ type: "cursor", id: connection.id, name, x: at.x, y: at.y }), [connection.id]);
  }

  onClose(connection: PartyConnection) {
    this.broadcast(JSON.stringify({ type: "leave", id: connection.id }), [connection.id]);
  }
}

export default {
  // Clients never reach the rooms through this Worker: the gate forwards admitted upgrades to
  // them through its own Durable Object bindings (script_name = "sessiongate-example-room").
  async fetch(): Promise<Response> {
    return new Response("sessiongate-example-room: connect through the sessiongate gate\n", { status: 404 });
  },
} satisfies ExportedHandler<Env>;
