// sessiongate demo client. Contract: docs/PROTOCOL.md. No framework, no build step.

const $ = (sel) => document.querySelector(sel);

/** Tiny DOM builder: h("li", {class: "x", dataset: {a: "b"}}, "text", child). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const NAME_RE = /^[A-Za-z0-9_-]{1,32}$/;
const ROOM_RE = /^[A-Za-z0-9_-]+$/;
const MAX_LOG_ENTRIES = 500;
const BACKOFF_BASE_MS = 1000;
const BACKOFF_CAP_MS = 30000;

const ui = {
  whoami: $("#whoami"),
  sessionPill: $("#session-pill"),
  logout: $("#logout"),
  loginForm: $("#login-form"),
  loginName: $("#login-name"),
  roleChat: $("#role-chat"),
  roleAdmin: $("#role-admin"),
  loginSubmit: $("#login-submit"),
  loginError: $("#login-error"),
  demoOff: $("#demo-off"),
  roomButtons: [...document.querySelectorAll(".room-btn[data-room]")],
  customForm: $("#join-custom-form"),
  customInput: $("#join-custom"),
  customError: $("#join-custom-error"),
  roomTitle: $("#room-title"),
  roomPath: $("#room-path"),
  status: $("#status"),
  leave: $("#leave"),
  banner: $("#banner"),
  bannerTitle: $("#banner-title"),
  bannerDetail: $("#banner-detail"),
  bannerRetry: $("#banner-retry"),
  bannerDismiss: $("#banner-dismiss"),
  chatLog: $("#chat-log"),
  chatEmpty: $("#chat-empty"),
  chatEmptyTitle: $("#chat-empty-title"),
  chatEmptyText: $("#chat-empty-text"),
  signinCard: $("#signin-card"),
  composer: $("#composer"),
  composerTarget: $("#composer-target"),
  composerTargetName: $("#composer-target-name"),
  composerTargetClear: $("#composer-target-clear"),
  chatInputLabel: $("#chat-input-label"),
  chatInput: $("#chat-input"),
  chatSend: $("#chat-send"),
  presence: $("#presence"),
  presenceCount: $("#presence-count"),
  showRaw: $("#show-raw"),
};

/* ------------------------------------------------------------------ session */

const auth = {
  demo: "unknown", // "unknown" | "on" | "off" | "unreachable"
  user: null, // {id, name, roles} from /demo/me or /demo/login
};

function renderAuth() {
  const { demo, user } = auth;
  ui.demoOff.hidden = demo !== "off";
  ui.loginForm.hidden = demo === "off";
  ui.logout.hidden = !(demo === "on" && user);
  ui.loginSubmit.textContent = user ? "Switch user" : "Sign in";
  ui.loginName.placeholder = user ? "another name" : "ada";
  ui.signinCard.dataset.signedIn = user ? "true" : "false";

  let pillText;
  let pillState;
  if (demo === "off") {
    ui.whoami.textContent = "demo sign-in is off on this deployment";
    pillText = "demo off";
    pillState = "muted";
  } else if (demo === "unreachable") {
    ui.whoami.textContent = "Could not reach the server to check your session.";
    pillText = "unknown";
    pillState = "warn";
  } else if (demo === "unknown") {
    ui.whoami.textContent = "Checking your session…";
    pillText = "checking…";
    pillState = "muted";
  } else if (user) {
    const roles = Array.isArray(user.roles) && user.roles.length ? user.roles.join(", ") : "no roles";
    ui.whoami.replaceChildren("Signed in as ", h("strong", {}, user.name ?? user.id ?? "?"), ` · ${roles}`);
    pillText = "signed in";
    pillState = "ok";
  } else {
    ui.whoami.textContent = "No session — sign in below.";
    pillText = "signed out";
    pillState = "muted";
  }
  ui.sessionPill.textContent = pillText;
  ui.sessionPill.dataset.state = pillState;
}

async function readJson(res) {
  try {
    return await res.json();
  } catch {
    return null;
  }
}

async function refreshMe() {
  try {
    const res = await fetch("/demo/me", { credentials: "same-origin", headers: { accept: "application/json" } });
    if (res.status === 404) {
      auth.demo = "off";
      auth.user = null;
    } else if (res.ok) {
      const body = await readJson(res);
      auth.demo = "on";
      auth.user = body?.user ?? null;
    } else {
      auth.demo = "on";
      auth.user = null;
    }
  } catch {
    auth.demo = "unreachable";
  }
  renderAuth();
}

function setLoginError(text) {
  ui.loginError.textContent = text;
  ui.loginName.setAttribute("aria-invalid", text ? "true" : "false");
}

async function login(event) {
  event.preventDefault();
  const name = ui.loginName.value.trim();
  if (!NAME_RE.test(name)) {
    setLoginError(name ? "Use 1–32 letters, digits, - or _." : "Enter a name.");
    ui.loginName.focus();
    return;
  }
  setLoginError("");
  const roles = [ui.roleChat, ui.roleAdmin].filter((box) => box.checked).map((box) => box.value);
  ui.loginSubmit.disabled = true;
  try {
    const res = await fetch("/demo/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ name, roles }),
    });
    const body = await readJson(res);
    if (res.status === 404) {
      auth.demo = "off";
      auth.user = null;
    } else if (res.ok) {
      auth.demo = "on";
      auth.user = body?.user ?? { id: `u-${name}`, name, roles };
      ui.loginName.value = "";
    } else {
      setLoginError(body?.error ? `Sign-in refused: ${body.error}` : `Sign-in failed (HTTP ${res.status}).`);
    }
  } catch {
    setLoginError("Could not reach the server.");
  } finally {
    ui.loginSubmit.disabled = false;
    renderAuth();
  }
}

async function logout() {
  ui.logout.disabled = true;
  try {
    const res = await fetch("/demo/logout", { method: "POST", credentials: "same-origin" });
    if (res.status === 404) auth.demo = "off";
    auth.user = null;
    // The server revokes the session; an open socket is closed by the room with
    // 4401 "session revoked", which the close handler reports (and does not retry).
  } catch {
    setLoginError("Could not reach the server to sign out.");
  } finally {
    ui.logout.disabled = false;
    renderAuth();
  }
}

/* ------------------------------------------------------------- connection */

const conn = {
  room: null, // {name, path}
  ws: null,
  generation: 0, // bumps on every join/leave so stale sockets are ignored
  opened: false, // did the current socket ever open?
  attempt: 0, // consecutive failed attempts, drives the backoff
  retryTimer: 0,
  countdownTimer: 0,
  retryAt: 0,
  state: "idle",
  selfId: null,
  selfSession: null,
  peers: new Map(), // id -> {id, session, self}
  target: null, // peer id for direct messages
};

const STATUS_TEXT = {
  idle: "not in a room",
  connecting: "connecting",
  connected: "connected",
  refused: "refused",
  closed: "closed",
};

function setStatus(state, text) {
  conn.state = state;
  ui.status.dataset.state = state;
  const label = text ?? STATUS_TEXT[state] ?? state;
  if (ui.status.textContent !== label) ui.status.textContent = label;
  const live = state === "connected";
  ui.chatInput.disabled = !live;
  ui.chatSend.disabled = !live;
  ui.chatInput.placeholder = live
    ? conn.target ? "Write a direct message…" : `Message #${conn.room?.name ?? ""}`
    : state === "connecting" || state === "reconnecting" ? "Waiting for the connection…"
      : conn.room ? "Not connected" : "Join a room to chat";
  ui.leave.disabled = !conn.room || state === "closed" || state === "idle";
  if (conn.peers.size === 0) renderPresence(); // the empty-state text depends on the state
}

function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

function clearTimers() {
  clearTimeout(conn.retryTimer);
  clearInterval(conn.countdownTimer);
  conn.retryTimer = 0;
  conn.countdownTimer = 0;
}

function dropSocket() {
  const ws = conn.ws;
  conn.ws = null;
  if (ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) {
      try {
        ws.close(1000, "leaving");
      } catch {
        /* already closing */
      }
    }
  }
}

function markRoomButtons() {
  for (const btn of ui.roomButtons) {
    const active = !!conn.room && btn.dataset.path === conn.room.path;
    btn.setAttribute("aria-pressed", String(active));
  }
}

function join(name, path) {
  if (conn.room?.path === path && (conn.state === "connected" || conn.state === "connecting")) return;
  clearTimers();
  dropSocket();
  const sameRoom = conn.room?.path === path;
  conn.room = { name, path };
  conn.attempt = 0;
  conn.generation += 1;
  hideBanner();
  if (!sameRoom) resetRoomView();
  ui.roomTitle.replaceChildren(h("span", { class: "room-hash", "aria-hidden": "true" }, "#"), name);
  ui.roomPath.textContent = path;
  markRoomButtons();
  connect();
}

function leave() {
  if (!conn.room) return;
  clearTimers();
  dropSocket();
  conn.generation += 1;
  const name = conn.room.name;
  conn.room = null;
  markRoomButtons();
  clearPresence();
  hideBanner();
  systemLine(`You left #${name}.`);
  setStatus("closed");
}

function connect() {
  const generation = conn.generation;
  conn.opened = false;
  setStatus("connecting");
  let ws;
  try {
    ws = new WebSocket(wsUrl(conn.room.path));
  } catch (err) {
    // Only a malformed URL throws here; treat it like a failed handshake.
    onClose(generation, { code: 1006, reason: String(err?.message ?? err), wasClean: false });
    return;
  }
  conn.ws = ws;
  ws.onopen = () => {
    if (generation !== conn.generation) return;
    conn.opened = true;
  };
  ws.onmessage = (event) => {
    if (generation !== conn.generation) return;
    onFrame(event.data);
  };
  ws.onerror = () => {
    /* always followed by close; handled there */
  };
  ws.onclose = (event) => onClose(generation, event);
}

/** Human text for a refusal close code (docs/PROTOCOL.md, table of close codes). */
function describeRefusal(code, reason) {
  const r = (reason || "").toLowerCase();
  switch (code) {
    case 4401:
      if (r === "session expired") return { title: "Your session expired — sign in again", detail: "Sign in on the left, then join the room again." };
      if (r === "session revoked") return { title: "Your session was revoked", detail: "You signed out or the session was ended elsewhere. Sign in again to rejoin." };
      return { title: "Not signed in", detail: "Sign in on the left, then join the room again." };
    case 4403:
      return {
        title: "Not allowed in this room",
        detail: r === "origin not allowed"
          ? "This page's origin is not on the gate's allow-list."
          : "Your session does not satisfy this room's rules.",
      };
    case 4429:
      return {
        title: "Too many connections",
        detail: r === "room is full"
          ? "This room is full."
          : r.includes("session")
            ? "This session already has too many sockets open. Close another tab and try again."
            : "The gate is limiting connections right now.",
      };
    case 4503:
      return { title: "Service unavailable — try again shortly", detail: "The session store could not be reached, so the gate refused to guess." };
    case 1008:
      return { title: "Disconnected: too many messages", detail: "The room closed this socket for exceeding its rate limit." };
    default:
      return { title: "Refused by the server", detail: "The gate closed the connection and asked not to retry." };
  }
}

function isRefusal(code) {
  return (code >= 4000 && code <= 4999) || code === 1008;
}

function onClose(generation, event) {
  if (generation !== conn.generation) return;
  conn.ws = null;
  const { code, reason } = event;
  clearPresence();

  if (isRefusal(code)) {
    const { title, detail } = describeRefusal(code, reason);
    showBanner({ code, reason, title, detail, kind: "refusal", retry: true });
    systemLine(`Closed by the server (${code}${reason ? ` · ${reason}` : ""}); not retrying.`, "warn");
    setStatus("refused");
    // A revoked or missing session means our signed-in state is stale.
    if (code === 4401 && auth.demo === "on") refreshMe();
    return;
  }

  if (!conn.opened) {
    showBanner({
      code: code || 1006,
      reason,
      title: "Could not connect",
      detail: "The handshake failed before the socket opened (a gate answering with an HTTP status looks like this too). Retrying with backoff.",
      kind: "drop",
    });
    if (conn.attempt === 0) systemLine(`Handshake to ${conn.room.path} failed; retrying with backoff.`, "warn");
  } else {
    const why = code === 1001 ? "the server is going away" : code === 1011 ? "a server error" : "the connection dropped";
    showBanner({ code, reason, title: "Connection lost", detail: `Closed because ${why}. Reconnecting with backoff.`, kind: "drop" });
    systemLine(`Dropped (${code}${reason ? ` · ${reason}` : ""}); reconnecting with backoff.`, "warn");
  }
  scheduleReconnect(generation);
}

function backoffDelay(attempt) {
  const base = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  // Up to 20% jitter (downwards, so the cap holds) so a room full of clients does not
  // reconnect in lockstep.
  return Math.round(base * (0.8 + Math.random() * 0.2));
}

function scheduleReconnect(generation) {
  clearTimers();
  const delay = backoffDelay(conn.attempt);
  conn.attempt += 1;
  conn.retryAt = Date.now() + delay;
  const tick = () => {
    const secs = Math.max(1, Math.ceil((conn.retryAt - Date.now()) / 1000));
    setStatus("reconnecting", `reconnecting in ${secs}s`);
  };
  tick();
  conn.countdownTimer = setInterval(tick, 250);
  conn.retryTimer = setTimeout(() => {
    if (generation !== conn.generation || !conn.room) return;
    clearTimers();
    connect();
  }, delay);
}

function reconnectNow() {
  if (conn.room && conn.state === "reconnecting") {
    clearTimers();
    connect();
  }
}

/* ------------------------------------------------------------------ frames */

function sessionName(session, fallback) {
  const name = session?.user?.name;
  if (typeof name === "string" && name) return name;
  const pid = session?.passport?.user;
  if (typeof pid === "string" && pid) return pid;
  return fallback ?? "unknown";
}

function onFrame(raw) {
  let frame;
  try {
    frame = JSON.parse(raw);
  } catch {
    inlineWarning("The server sent a frame that is not JSON.");
    return;
  }
  switch (frame?.type) {
    case "welcome": {
      conn.attempt = 0;
      conn.selfId = frame.id;
      conn.selfSession = frame.session ?? {};
      conn.peers.clear();
      conn.peers.set(frame.id, { id: frame.id, session: conn.selfSession, self: true });
      for (const peer of frame.peers ?? []) {
        if (peer && peer.id !== undefined) conn.peers.set(peer.id, { id: peer.id, session: peer.session ?? {}, self: false });
      }
      if (conn.target !== null && !conn.peers.has(conn.target)) setTarget(null);
      hideBanner();
      setStatus("connected");
      renderPresence();
      const others = conn.peers.size - 1;
      systemLine(
        `Connected to #${conn.room.name} as ${sessionName(conn.selfSession, "you")}` +
          (others ? ` · ${others} other socket${others === 1 ? "" : "s"} here.` : " · nobody else here yet."),
      );
      break;
    }
    case "join": {
      if (frame.id === conn.selfId) break;
      conn.peers.set(frame.id, { id: frame.id, session: frame.session ?? {}, self: false });
      renderPresence();
      systemLine(`${sessionName(frame.session, frame.id)} joined.`, "join");
      break;
    }
    case "leave": {
      const peer = conn.peers.get(frame.id);
      // A leave for a socket we do not list (already gone, or never announced) changes
      // nothing; announcing it would print a raw connection id.
      if (!peer || peer.self) break;
      conn.peers.delete(frame.id);
      if (conn.target === frame.id) setTarget(null);
      renderPresence();
      systemLine(`${sessionName(peer?.session, String(frame.id))} left.`, "leave");
      break;
    }
    case "message": {
      const from = frame.from ?? {};
      // The protocol uses one frame for broadcast and direct messages; mark it direct only
      // if the server ever says so.
      const direct = frame.direct === true || frame.to !== undefined;
      addMessage({
        fromId: from.id,
        fromName: sessionName(from.session, from.id !== undefined ? String(from.id) : "unknown"),
        data: frame.data,
        self: from.id !== undefined && from.id === conn.selfId,
        direct,
      });
      break;
    }
    case "error": {
      // "the last client frame was refused": strike through our latest local echo.
      const own = ui.chatLog.querySelectorAll('.msg[data-self="true"]');
      const last = own[own.length - 1];
      if (last && last.dataset.refused !== "true") {
        last.dataset.refused = "true";
        last.classList.add("msg--refused");
      }
      inlineWarning(`The room refused your last message: ${frame.reason ?? "no reason given"}.`);
      break;
    }
    default:
      // Unknown frame types are ignored so the server can grow the protocol.
      break;
  }
}

function send(frame) {
  if (!conn.ws || conn.ws.readyState !== WebSocket.OPEN) return false;
  conn.ws.send(JSON.stringify(frame));
  return true;
}

function submitChat(event) {
  event.preventDefault();
  const text = ui.chatInput.value.trim();
  if (!text) return;
  const targetId = conn.target;
  const frame = targetId !== null
    ? { type: "send", to: targetId, data: { text } }
    : { type: "broadcast", data: { text } };
  if (!send(frame)) {
    inlineWarning("Not connected: the message was not sent.");
    return;
  }
  const target = targetId !== null ? conn.peers.get(targetId) : null;
  addMessage({
    fromId: conn.selfId,
    fromName: sessionName(conn.selfSession, auth.user?.name ?? "you"),
    data: { text },
    self: true,
    direct: targetId !== null,
    toName: target ? sessionName(target.session, String(targetId)) : undefined,
  });
  ui.chatInput.value = "";
  ui.chatInput.focus();
}

/* ---------------------------------------------------------------- chat log */

function timeNow() {
  const now = new Date();
  return h("time", { datetime: now.toISOString(), class: "msg-time" },
    now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
}

function appendLog(node) {
  ui.chatEmpty.hidden = true;
  const log = ui.chatLog;
  const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  log.append(node);
  const entries = log.querySelectorAll(".msg, .sys");
  for (let i = 0; i < entries.length - MAX_LOG_ENTRIES; i += 1) entries[i].remove();
  if (nearBottom || node.dataset.self === "true") log.scrollTop = log.scrollHeight;
}

function addMessage({ fromId, fromName, data, self, direct, toName }) {
  let body;
  if (data && typeof data === "object" && typeof data.text === "string") {
    body = h("p", { class: "msg-text" }, data.text);
  } else if (typeof data === "string") {
    body = h("p", { class: "msg-text" }, data);
  } else {
    body = h("pre", { class: "msg-data" }, JSON.stringify(data, null, 2));
  }
  const node = h(
    "article",
    {
      class: `msg${self ? " msg--self" : ""}${direct ? " msg--direct" : ""}`,
      dataset: {
        fromName,
        fromId: fromId !== undefined && fromId !== null ? String(fromId) : "",
        self: self ? "true" : "false",
        direct: direct ? "true" : "false",
      },
    },
    avatar(fromName),
    h(
      "div",
      { class: "msg-main" },
      h(
        "header",
        { class: "msg-meta" },
        h("span", { class: "msg-author" }, fromName),
        self ? h("span", { class: "tag tag--you" }, "you") : null,
        direct ? h("span", { class: "tag tag--direct" }, toName ? `direct → ${toName}` : "direct") : null,
        timeNow(),
      ),
      body,
    ),
  );
  appendLog(node);
}

function systemLine(text, kind = "info") {
  appendLog(h("div", { class: `sys sys--${kind}`, dataset: { kind } }, h("span", { class: "sys-text" }, text), timeNow()));
}

function inlineWarning(text) {
  appendLog(h("div", { class: "sys sys--error", dataset: { kind: "error", testid: "frame-error" } },
    h("span", { class: "sys-icon", "aria-hidden": "true" }, "!"), h("span", { class: "sys-text" }, text), timeNow()));
}

const EMPTY_IDLE = { title: ui.chatEmptyTitle.textContent, text: [...ui.chatEmptyText.childNodes] };

function resetRoomView() {
  for (const node of ui.chatLog.querySelectorAll(".msg, .sys")) node.remove();
  ui.chatEmpty.hidden = false;
  if (conn.room) {
    ui.chatEmptyTitle.textContent = `Connecting to #${conn.room.name}…`;
    ui.chatEmptyText.replaceChildren("The handshake carries your ", h("code", {}, "connect.sid"),
      " cookie; the gate checks it before the room ever sees the socket.");
  } else {
    ui.chatEmptyTitle.textContent = EMPTY_IDLE.title;
    ui.chatEmptyText.replaceChildren(...EMPTY_IDLE.text);
  }
  clearPresence();
  setTarget(null);
}

/* ---------------------------------------------------------------- presence */

function hue(text) {
  let n = 0;
  for (const ch of String(text)) n = (n * 31 + ch.codePointAt(0)) % 360;
  return n;
}

function avatar(name) {
  const letter = (String(name).match(/[A-Za-z0-9]/)?.[0] ?? "?").toUpperCase();
  const el = h("span", { class: "avatar", "aria-hidden": "true" }, letter);
  el.style.setProperty("--h", hue(name));
  return el;
}

function clearPresence() {
  conn.peers.clear();
  conn.selfId = null;
  conn.target = null;
  ui.composerTarget.hidden = true;
  ui.chatInputLabel.textContent = "Message everyone in the room";
  renderPresence();
}

function renderPresence() {
  const items = [];
  const ordered = [...conn.peers.values()].sort((a, b) => Number(b.self) - Number(a.self));
  for (const peer of ordered) {
    const session = peer.session ?? {};
    const name = sessionName(session, String(peer.id));
    const roles = Array.isArray(session.user?.roles) ? session.user.roles : [];
    const pid = session.passport?.user;
    const selected = conn.target === peer.id;
    items.push(
      h(
        "li",
        {
          class: `peer${peer.self ? " peer--self" : ""}${selected ? " peer--selected" : ""}`,
          dataset: { peerId: String(peer.id), userName: name, self: peer.self ? "true" : "false" },
        },
        h(
          peer.self ? "div" : "button",
          peer.self
            ? { class: "peer-btn", title: `Socket ${peer.id} (this tab)` }
            : {
                type: "button",
                class: "peer-btn",
                "aria-pressed": String(selected),
                title: `Socket ${peer.id}: ${selected ? "stop direct messages" : "send a direct message"}`,
              },
          avatar(name),
          h(
            "span",
            { class: "peer-main" },
            h("span", { class: "peer-name" }, name, peer.self ? h("span", { class: "tag tag--you" }, "you") : null),
            roles.length
              ? h("span", { class: "peer-roles" }, roles.map((role) => h("span", { class: `tag tag--role${role === "admin" ? " tag--admin" : ""}` }, String(role))))
              : h("span", { class: "peer-roles peer-roles--none" }, "no roles"),
            pid !== undefined ? h("code", { class: "peer-id", title: "passport.user" }, String(pid)) : null,
          ),
        ),
        h("pre", { class: "peer-raw", "aria-label": `Projected session of ${name}` }, JSON.stringify(session, null, 2)),
      ),
    );
  }
  ui.presence.replaceChildren(...items);
  ui.presenceCount.textContent = String(conn.peers.size);
  if (!items.length) {
    const text = !conn.room ? "Join a room to see every socket in it."
      : conn.state === "refused" ? "Not in the room."
        : "Waiting for the room…";
    ui.presence.append(h("li", { class: "presence-empty" }, text));
  }
}

function setTarget(id) {
  conn.target = id;
  const peer = id !== null ? conn.peers.get(id) : null;
  ui.composerTarget.hidden = !peer;
  if (peer) {
    const name = sessionName(peer.session, String(id));
    ui.composerTargetName.textContent = name;
    ui.chatInputLabel.textContent = `Direct message to ${name}`;
  } else {
    conn.target = null;
    ui.chatInputLabel.textContent = "Message everyone in the room";
  }
  setStatus(conn.state, ui.status.textContent);
  renderPresence();
}

function onPresenceClick(event) {
  if (event.target.closest(".peer-raw")) return;
  const li = event.target.closest("li[data-peer-id]");
  if (!li || li.dataset.self === "true") return;
  const peer = [...conn.peers.values()].find((p) => String(p.id) === li.dataset.peerId);
  if (!peer) return;
  setTarget(conn.target === peer.id ? null : peer.id);
  if (conn.target !== null && !ui.chatInput.disabled) ui.chatInput.focus();
}

/* ------------------------------------------------------------------ banner */

function showBanner({ code, reason, title, detail, kind, retry = false }) {
  ui.banner.dataset.code = String(code ?? "");
  ui.banner.dataset.kind = kind;
  ui.bannerTitle.textContent = title;
  ui.bannerDetail.replaceChildren(
    detail ? `${detail} ` : "",
    code ? h("code", { class: "banner-code" }, `${code}${reason ? ` · ${reason}` : ""}`) : null,
  );
  ui.bannerRetry.hidden = !retry;
  ui.banner.hidden = false;
}

function hideBanner() {
  ui.banner.hidden = true;
  ui.banner.dataset.code = "";
  ui.banner.dataset.kind = "";
}

/* ------------------------------------------------------------------ wiring */

ui.loginForm.addEventListener("submit", login);
ui.loginName.addEventListener("input", () => {
  if (ui.loginError.textContent) setLoginError("");
});
ui.logout.addEventListener("click", logout);

for (const btn of ui.roomButtons) {
  btn.addEventListener("click", () => join(btn.dataset.room, btn.dataset.path));
}

ui.customForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = ui.customInput.value.trim();
  if (!ROOM_RE.test(name)) {
    ui.customError.textContent = name ? "Room names use letters, digits, - and _." : "Enter a room name.";
    ui.customInput.setAttribute("aria-invalid", "true");
    ui.customInput.focus();
    return;
  }
  ui.customError.textContent = "";
  ui.customInput.setAttribute("aria-invalid", "false");
  join(name, `/ws/rooms/${name}`);
});
ui.customInput.addEventListener("input", () => {
  ui.customError.textContent = "";
  ui.customInput.removeAttribute("aria-invalid");
});

ui.leave.addEventListener("click", leave);
ui.bannerDismiss.addEventListener("click", hideBanner);
ui.bannerRetry.addEventListener("click", () => {
  if (conn.room) join(conn.room.name, conn.room.path);
});

ui.composer.addEventListener("submit", submitChat);
ui.composerTargetClear.addEventListener("click", () => {
  setTarget(null);
  ui.chatInput.focus();
});
ui.presence.addEventListener("click", onPresenceClick);
ui.showRaw.addEventListener("change", () => {
  ui.presence.classList.toggle("presence--raw", ui.showRaw.checked);
});

// Coming back online (or to the tab) skips the remaining backoff wait.
window.addEventListener("online", reconnectNow);

renderAuth();
renderPresence();
setStatus("idle");
refreshMe();
