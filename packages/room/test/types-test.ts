// Compile-only checks of the declarations (not part of npm test: this repository does not
// install TypeScript; see README.md "Checking the types"). The example app is checked too.

import { GatedRoom, NonceCache, verifyAdmission, verifyControl, type Admission, type Connection } from "sessiongate-room";
import { Gate, buildTags } from "sessiongate-room/core";
import { GatedServer, withSessiongate } from "sessiongate-room/partyserver";
import { Server, type Connection as PartyConnection } from "partyserver";

interface Env { ADMISSION_KEY: string; GATE: Fetcher }
interface S { user: { name: string } }

export class Room extends GatedRoom<Env, S, { cursor: [number, number] }> {
  static sessiongate = (env: Env) => ({ key: [env.ADMISSION_KEY, "old"], revalidateSeconds: 30 });
  onJoin(socket: WebSocket, session: S, conn: Connection<S, { cursor: [number, number] }>) {
    const name: string = session.user.name;
    conn.setState({ cursor: [0, 0] });
    socket.send(JSON.stringify({ name, peers: this.sessions().map((p) => p.session.user.name) }));
  }
  onLeave(_socket: WebSocket, conn: Connection<S>, code: number) {
    this.broadcast(`${conn.id} left ${code}`, [conn.id]);
  }
  tags(admission: Admission<S>) {
    return [`user:${admission.session.user.name}`];
  }
}

export class Party extends GatedServer<Env> {
  static options = { hibernate: true };
  onConnect(connection: PartyConnection<{ session: S }>) {
    const s: S | undefined = this.sessionOf(connection) as S | undefined;
    connection.send(String(s?.user.name ?? connection.state?.session.user.name));
  }
}

class Base extends Server<Env> {
  hello() { return 1; }
}
export class Mixed extends withSessiongate(Base, { revalidateSeconds: 0 }) {
  onConnect(connection: PartyConnection) {
    const n: number = this.hello();
    connection.send(`${n} ${this.sessions().length}`);
  }
}

export async function plain(request: Request) {
  const nonces = new NonceCache({ max: 100 });
  const a = await verifyAdmission<S>(request, { key: "k", room: "lobby", nonces });
  const c = await verifyControl(request, { key: ["k"], nonces });
  const { tags, overflow } = await buildTags(a.revoke, ["x"], { reserved: 1 });
  const g: typeof Gate = Gate;
  return [a.session.user.name, c.op, tags, overflow, g] as const;
}
