// Tocsin browser client and notification bell. Plain JavaScript, no build step.
//
//   <script type="module" src="https://tocsin.example.com/static/tocsin.js"></script>
//   <tocsin-bell server="https://tocsin.example.com" token="…"></tocsin-bell>
//
// A page on another origin than the server's must be listed in the server's
// TOCSIN_ALLOWED_ORIGINS; when it is not, the client says so once, in the console.
// Colours and font are CSS custom properties (--tocsin-bell-color, …: see STYLE below).
//
// TocsinClient keeps one live stream (WebSocket, falling back to Server-Sent Events), resumes
// after any disconnect from the last seq it saw, and keeps a local list in seq order.
// A grouped item ("Eve and 4 others liked your post") keeps its id while it grows: each
// notification folded into it arrives with that id and a newer seq, and replaces the entry.
// Text from notifications is always inserted as text (textContent), never as HTML.

const BACKOFF_MS = [250, 500, 1000, 2000, 5000, 10000];
// Servers whose refusal of this page's origin was already reported: once per page, however
// many bells or clients point at them.
const REPORTED_ORIGIN_REFUSALS = new Set();

function sameOrigin(server) {
  return !server || new URL(server, window.location.href).origin === window.location.origin;
}

// Whether `server` refuses this page's origin. Browsers hide why a cross-origin request failed,
// so ask twice: a plain CORS GET fails when the origin is not allowed (or the server is down);
// an opaque no-cors GET fails only when the server is down.
async function refusesThisOrigin(server) {
  if (sameOrigin(server)) return false;
  try {
    await fetch(`${server}/healthz`, { mode: "cors", cache: "no-store" });
    return false; // allowed: whatever failed, it was not the origin
  } catch (error) { /* refused, or unreachable: the next request tells which */ }
  try {
    await fetch(`${server}/healthz`, { mode: "no-cors", cache: "no-store" });
  } catch (error) {
    return false; // unreachable: retrying is the cure, not a setting
  }
  return true;
}

// A refused request: `status`, and the server's error `code` and `message` when it sent one
// (every error body is `{"error": {"code", "message"}}`).
export class TocsinApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "TocsinApiError";
    this.status = status;
    this.code = code;
  }

  static async from(path, response) {
    let code = "error";
    let message = `${path}: HTTP ${response.status}`;
    try {
      const body = await response.json();
      if (body && body.error) {
        if (body.error.code) code = String(body.error.code);
        if (body.error.message) message = String(body.error.message);
      }
    } catch (error) { /* no JSON body: the status says it all */ }
    return new TocsinApiError(response.status, code, message);
  }
}

export class TocsinClient extends EventTarget {
  constructor({ server = "", token, getToken = null, transport = "auto" } = {}) {
    super();
    this.server = server.replace(/\/$/, "");
    this.token = token;
    this.getToken = getToken;
    this.transport = transport; // "auto" | "ws" | "sse"
    this.items = new Map(); // id -> notification
    this.unread = { count: 0, seq: 0, version: 0 };
    this.lastSeq = null; // newest notification seq this client holds
    this.state = "idle";
    this.via = null;
    this._attempt = 0;
    this._wsFailures = 0;
    this._closed = false;
    this._running = false;
    this._diagnosed = false; // the first failure was looked into (see _diagnose)
    this._originRefused = false;
    this._everLive = false;
  }

  // -- list and state -------------------------------------------------------------------------

  async _api(path, options = {}, renewed = false) {
    const response = await fetch(this.server + path, {
      ...options,
      headers: {
        Authorization: `Bearer ${this.token}`,
        "Content-Type": "application/json",
        ...(options.headers || {}),
      },
    });
    if (response.status === 401 && this.getToken && !renewed) {
      this.token = await this.getToken(); // once: a server refusing fresh tokens is not retried
      return this._api(path, options, true);
    }
    if (!response.ok) throw await TocsinApiError.from(path, response);
    if (response.status === 204) return null;
    return response.json();
  }

  async refresh() {
    const page = await this._api("/v1/me/notifications?limit=50");
    this.items.clear();
    for (const item of page.notifications) this.items.set(item.id, item);
    this._setUnread({ count: page.unread_count, seq: page.seq, version: page.version });
    this.lastSeq = page.seq;
    this._changed();
  }

  list() {
    return [...this.items.values()].sort((a, b) => b.seq - a.seq);
  }

  _setUnread(unread) {
    // Every change of the count raises its version: never show an older count over a newer one.
    if ((unread.version ?? 0) >= (this.unread.version ?? 0)) this.unread = unread;
  }

  _changed() {
    this.dispatchEvent(new CustomEvent("change", { detail: this }));
  }

  // -- operations -----------------------------------------------------------------------------

  async markRead(id) {
    if (this.via === "ws" && this._ws && this._ws.readyState === WebSocket.OPEN) {
      this._ws.send(JSON.stringify({ op: "mark-as-read", id }));
      return;
    }
    const result = await this._api(`/v1/me/notifications/${encodeURIComponent(id)}/read`,
      { method: "POST" });
    this._applyRead(result.ids, result.seq);
    this._setUnread({ count: result.unread_count, seq: result.seq, version: result.version });
    this._changed();
  }

  async markAllRead() {
    const seq = this.lastSeq ?? 0;
    if (this.via === "ws" && this._ws && this._ws.readyState === WebSocket.OPEN) {
      this._ws.send(JSON.stringify({ op: "mark-all-as-read", seq }));
      return;
    }
    const result = await this._api("/v1/me/notifications/read-all",
      { method: "POST", body: JSON.stringify({ seq }) });
    this._applyReadAll(seq);
    this._setUnread({ count: result.unread_count, seq: result.seq, version: result.version });
    this._changed();
  }

  // `seq`, when known, is the user's newest seq as of the read: an item that took a newer seq
  // since (a grouped one that another notification folded into) is unread again, not read.
  _applyRead(ids, seq = null) {
    for (const id of ids) {
      const item = this.items.get(id);
      if (item && (seq === null || item.seq <= seq)) item.read = true;
    }
  }

  _applyReadAll(seq) {
    for (const item of this.items.values()) if (item.seq <= seq) item.read = true;
  }

  // -- preferences ----------------------------------------------------------------------------

  preferences() {
    return this._api("/v1/me/preferences");
  }

  // `change` is `{"enabled": bool}` or `{"channels": {name: bool}}`; resolves to the type's entry.
  setPreference(type, change) {
    return this._api(`/v1/me/preferences/${encodeURIComponent(type)}`,
      { method: "PUT", body: JSON.stringify(change) });
  }

  resetPreference(type) {
    return this._api(`/v1/me/preferences/${encodeURIComponent(type)}`, { method: "DELETE" });
  }

  setMuted(muted) {
    return this._api("/v1/me/preferences", { method: "PUT", body: JSON.stringify({ muted }) });
  }

  setQuietHours(window) {
    return this._api("/v1/me/quiet-hours", { method: "PUT", body: JSON.stringify(window) });
  }

  clearQuietHours() {
    return this._api("/v1/me/quiet-hours", { method: "DELETE" });
  }

  // -- the stream -----------------------------------------------------------------------------

  async start() {
    if (this._running) return; // already started: a second stream would duplicate every event
    this._running = true;
    this._closed = false;
    await this._load();
  }

  async _load() {
    // The first list load is retried with the same backoff as the stream, so a server that is
    // briefly down when the page opens does not leave the bell stuck.
    if (this._closed) return;
    try {
      if (this.lastSeq === null) await this.refresh();
    } catch (error) {
      // fetch() rejects with a TypeError, saying nothing more, when CORS refuses the request.
      if (error instanceof TypeError) await this._diagnose();
      if (!this._originRefused) console.warn("tocsin: loading notifications failed:", error);
      const delay = BACKOFF_MS[Math.min(this._attempt, BACKOFF_MS.length - 1)];
      this._attempt += 1;
      this._setState("reconnecting");
      setTimeout(() => this._load(), delay);
      return;
    }
    this._connect();
  }

  // The first failure, of the first request or the first stream, is looked into once: when
  // the cause is that the server refuses this page's origin, retrying cannot help, and only the
  // server's operator can fix it, so say exactly what to change.
  async _diagnose() {
    if (this._diagnosed) return;
    this._diagnosed = true;
    if (!(await refusesThisOrigin(this.server))) return;
    this._originRefused = true;
    if (REPORTED_ORIGIN_REFUSALS.has(this.server)) return;
    REPORTED_ORIGIN_REFUSALS.add(this.server);
    console.error(`Tocsin: this page's origin ${window.location.origin} is not allowed by the ` +
      `server at ${this.server}; add it to TOCSIN_ALLOWED_ORIGINS (comma-separated) in that ` +
      "server's settings.");
  }

  stop() {
    this._running = false;
    this._closed = true;
    if (this._ws) this._ws.close();
    if (this._es) this._es.close();
    this._setState("closed");
  }

  _setState(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, via: this.via } }));
  }

  _query() {
    const params = new URLSearchParams({ token: this.token });
    if (this.lastSeq !== null) params.set("since", String(this.lastSeq));
    return params.toString();
  }

  _connect() {
    if (this._closed) return;
    const useWs = this.transport === "ws" ||
      (this.transport === "auto" && "WebSocket" in window && this._wsFailures < 2);
    this._setState("connecting");
    if (useWs) this._connectWs(); else this._connectSse();
  }

  _retry() {
    if (this._closed) return;
    const delay = BACKOFF_MS[Math.min(this._attempt, BACKOFF_MS.length - 1)];
    this._attempt += 1;
    this._setState("reconnecting");
    setTimeout(async () => {
      if (this.getToken) {
        try { this.token = await this.getToken(); } catch (e) { /* keep the old one */ }
      }
      this._connect();
    }, delay * (0.5 + Math.random()));
  }

  _connectWs() {
    const base = this.server || window.location.origin;
    const url = base.replace(/^http/, "ws") + "/v1/ws?" + this._query();
    const ws = new WebSocket(url);
    let opened = false;
    this._ws = ws;
    this.via = "ws";
    ws.onopen = () => {
      opened = true;
      this._everLive = true;
      this._attempt = 0;
      this._wsFailures = 0;
      this._setState("live");
    };
    ws.onmessage = (message) => {
      const { event, data } = JSON.parse(message.data);
      this._handle(event, data);
    };
    ws.onclose = () => {
      if (this._ws !== ws) return;
      this._ws = null;
      if (!opened) this._wsFailures += 1; // blocked by a proxy? try SSE after two failures
      if (!this._everLive) this._diagnose(); // refused at the handshake: the origin?
      this._retry();
    };
  }

  _connectSse() {
    const url = `${this.server}/v1/stream?${this._query()}`;
    const es = new EventSource(url);
    this._es = es;
    this.via = "sse";
    es.onopen = () => { this._everLive = true; this._attempt = 0; this._setState("live"); };
    for (const name of ["notification", "unread-count", "read", "read-all", "resync"]) {
      es.addEventListener(name, (message) => this._handle(name, JSON.parse(message.data)));
    }
    es.onerror = () => {
      // Reconnect ourselves, so the cursor and a fresh token go in the URL.
      es.close();
      if (!this._everLive) this._diagnose();
      if (this._es === es) { this._es = null; this._retry(); }
    };
  }

  _handle(event, data) {
    switch (event) {
      case "notification": {
        // One entry per id: a newer seq of a known id (a grouped item that grew) replaces it,
        // unread again; the same or an older seq of it (a duplicate) changes nothing.
        const known = this.items.get(data.id);
        if (known && data.seq <= known.seq) return;
        this.items.set(data.id, data);
        this.lastSeq = Math.max(this.lastSeq ?? 0, data.seq);
        this.dispatchEvent(new CustomEvent("notification", { detail: data }));
        break;
      }
      case "unread-count":
        this._setUnread(data);
        break;
      case "read":
        this._applyRead(data.ids);
        break;
      case "read-all":
        this._applyReadAll(data.seq);
        break;
      case "ack":
        this._setUnread({ count: data.unread_count, seq: data.seq, version: data.version });
        break;
      case "resync":
        this.refresh().catch(() => {});
        return;
      default:
        return;
    }
    this._changed();
  }
}

// -- the bell ---------------------------------------------------------------------------------

// Theming: set these custom properties on the element or any ancestor, e.g.
//   tocsin-bell { --tocsin-bell-color: #fff; --tocsin-panel-background: #1e1e1e; }
// The bell takes the surrounding text colour unless --tocsin-bell-color says otherwise, so it
// stays visible on a dark header. `::part(bell)` styles the bell button directly.
const STYLE = `
  :host { position: relative; display: inline-block;
          font: var(--tocsin-font, 14px/1.4 system-ui, sans-serif); }
  button.bell { position: relative; background: none; border: 0; cursor: pointer; font-size: 24px; padding: 4px 8px;
                color: var(--tocsin-bell-color, currentColor); }
  .badge { position: absolute; top: -6px; right: -8px; min-width: 18px; height: 18px; border-radius: 9px;
           background: var(--tocsin-badge-background, #d22); color: var(--tocsin-badge-color, #fff);
           font-size: 11px; line-height: 18px; text-align: center; padding: 0 4px; }
  .badge[hidden] { display: none; }
  .panel { position: absolute; right: 0; top: 40px; width: 340px; max-height: 420px; overflow: auto;
           background: var(--tocsin-panel-background, #fff); color: var(--tocsin-panel-color, #222);
           border: 1px solid var(--tocsin-panel-border-color, #ddd); border-radius: 8px;
           box-shadow: 0 6px 24px rgba(0,0,0,.15); z-index: 1000; }
  .panel[hidden] { display: none; }
  header { display: flex; justify-content: space-between; align-items: center; padding: 8px 12px;
           border-bottom: 1px solid var(--tocsin-divider-color, #eee); }
  header button { background: none; border: 0; color: var(--tocsin-accent-color, #06c); cursor: pointer; }
  ul { list-style: none; margin: 0; padding: 0; }
  li { padding: 10px 12px; border-bottom: 1px solid var(--tocsin-divider-color, #f2f2f2); cursor: pointer; }
  li.unread { background: var(--tocsin-unread-background, #eef5ff); }
  li .title { font-weight: 600; }
  li .count { float: right; min-width: 16px; margin-left: 6px; padding: 0 4px; border-radius: 8px;
              background: var(--tocsin-count-background, #e4e4e4); color: var(--tocsin-count-color, #444);
              font-size: 11px; line-height: 16px; text-align: center; }
  li .message { color: var(--tocsin-message-color, #555); }
  li .when { color: var(--tocsin-muted-color, #999); font-size: 11px; }
  .empty { padding: 16px; color: var(--tocsin-muted-color, #888); text-align: center; }
  .list-view[hidden], .preferences[hidden], .preferences [hidden] { display: none; }
  header .actions { display: flex; align-items: center; gap: 4px; }
  header button.gear { display: inline-flex; padding: 2px; }
  .preferences header { justify-content: flex-start; gap: 8px; }
  .preferences .error { margin: 8px 12px; padding: 6px 8px; border-radius: 4px;
                        color: var(--tocsin-error-color, #a00);
                        background: var(--tocsin-error-background, #fdecea); }
  .preferences .status { padding: 8px 12px; color: var(--tocsin-muted-color, #888); }
  .preferences input { accent-color: var(--tocsin-accent-color, #06c); }
  .preferences input[type=time], .preferences input[type=text] {
    font: inherit; color: inherit; background: transparent; padding: 1px 4px; border-radius: 4px;
    border: 1px solid var(--tocsin-panel-border-color, #ddd); }
  .preferences input[type=text] { width: 150px; }
  .preferences .mute { display: flex; align-items: center; gap: 6px; padding: 8px 12px; font-weight: 600;
                       border-bottom: 1px solid var(--tocsin-divider-color, #eee); }
  .type { padding: 8px 12px; border-bottom: 1px solid var(--tocsin-divider-color, #f2f2f2); }
  .types.muted .type:not(.critical) .name { color: var(--tocsin-muted-color, #999); }
  .type .name { font-weight: 600; }
  .type .lock { display: inline-flex; align-items: center; gap: 2px; margin-left: 6px; font-weight: 400;
                font-size: 11px; color: var(--tocsin-muted-color, #999); }
  .type.critical .controls { color: var(--tocsin-muted-color, #999); }
  .type .controls, .quiet .days, .quiet .times { display: flex; flex-wrap: wrap; align-items: center;
                                                 gap: 4px 10px; margin-top: 4px; font-size: 12px; }
  .quiet .days { gap: 4px 6px; }
  .type .controls label, .quiet .days label { display: inline-flex; align-items: center; gap: 2px; }
  .preferences button.reset, .quiet button { background: none; border: 0; padding: 0; cursor: pointer;
                                              font: inherit; color: var(--tocsin-accent-color, #06c); }
  .preferences button:disabled { color: var(--tocsin-muted-color, #999); cursor: default; }
  .quiet { border: 0; margin: 0; padding: 8px 12px; }
  .quiet legend { font-weight: 600; padding: 0; }
  .quiet .state { color: var(--tocsin-muted-color, #888); font-size: 12px; }
  .quiet .buttons { display: flex; gap: 12px; margin-top: 8px; }
`;

const CHANNELS = ["web", "email", "push"];
const CHANNEL_LABELS = { web: "Web", email: "Email", push: "Push" };
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_NAMES = { mon: "Monday", tue: "Tuesday", wed: "Wednesday", thu: "Thursday",
                    fri: "Friday", sat: "Saturday", sun: "Sunday" };
const LOCKED = "Always on: critical";
const ENABLED = 'input[data-control="enabled"]';
const MUTED = "Muted: turn off \"Mute all\" to change";
const GEAR = "M19.4 13a7.5 7.5 0 0 0 0-2l2.1-1.6-2-3.5-2.5 1a7.6 7.6 0 0 0-1.7-1L15 3.3h-4l-.4 2.6" +
  "a7.6 7.6 0 0 0-1.7 1l-2.5-1-2 3.5L6.6 11a7.5 7.5 0 0 0 0 2l-2.1 1.6 2 3.5 2.5-1a7.6 7.6 0 0 0 " +
  "1.7 1l.4 2.6h4l.4-2.6a7.6 7.6 0 0 0 1.7-1l2.5 1 2-3.5zM13 15.5a3.5 3.5 0 1 1 0-7 3.5 3.5 0 0 1 " +
  "0 7z";

// An element with its properties and children; strings become text nodes, never HTML.
function el(tag, properties = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(properties)) {
    if (value === undefined || value === null) continue;
    if (name in node && !name.includes("-") && name !== "part" && name !== "role") {
      node[name] = value; // className, textContent, type, checked, disabled, hidden, title…
    } else {
      node.setAttribute(name, String(value)); // part, role, aria-*, data-*
    }
  }
  node.append(...children);
  return node;
}

// A padlock and "Always on", titled LOCKED: a critical type's mark.
function lockMark() {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", "12");
  svg.setAttribute("height", "12");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("fill", "currentColor");
  path.setAttribute("d", "M17 9V7A5 5 0 0 0 7 7v2H5v13h14V9zM9 7a3 3 0 0 1 6 0v2H9z");
  svg.append(path);
  return el("span", { className: "lock", role: "img", title: LOCKED, "aria-label": LOCKED },
    svg, el("span", { textContent: "Always on", "aria-hidden": "true" }));
}

function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch (error) {
    return "UTC";
  }
}

export class TocsinBell extends HTMLElement {
  constructor() {
    super();
    this._client = null;
    this._bound = null; // the client whose changes this bell renders (and which it started)
    this._onChange = () => this.render();
  }

  // The client may be set before or after the element is connected (and before or after
  // tocsin.js defines the element): either way the bell follows the client it was given last.
  get client() {
    return this._client;
  }

  set client(client) {
    if (client === this._client) return;
    this._unbind();
    this._client = client || null;
    if (this.isConnected && this.shadowRoot) this._bind();
  }

  connectedCallback() {
    if (Object.prototype.hasOwnProperty.call(this, "client")) {
      // Set on the element before it was upgraded: that own property hides the accessor.
      const early = this.client;
      delete this.client;
      this.client = early;
    }
    if (!this.shadowRoot) this._build(); // once: an element moved in the DOM keeps its root
    if (!this._client && this.hasAttribute("token")) {
      this._client = new TocsinClient({
        server: this.getAttribute("server") || "",
        token: this.getAttribute("token"),
        transport: this.getAttribute("transport") || "auto",
      });
    }
    this._bind();
  }

  disconnectedCallback() {
    this._unbind();
  }

  _build() {
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = `<style>${STYLE}</style>
      <button class="bell" part="bell" aria-label="Notifications"><svg width="22" height="22" viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1z"/></svg><span class="badge" hidden>0</span></button>
      <div class="panel" hidden>
        <div class="list-view">
          <header><strong>Notifications</strong><span class="actions"><button class="all">Mark all read</button><button class="gear" part="preferences-button" aria-label="Preferences" title="Preferences"><svg width="16" height="16" viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" fill-rule="evenodd" d="${GEAR}"/></svg></button></span></header>
          <ul></ul>
        </div>
      </div>`;
    this._badge = root.querySelector(".badge");
    this._panel = root.querySelector(".panel");
    this._listView = root.querySelector(".list-view");
    this._list = root.querySelector("ul");
    root.querySelector(".bell").addEventListener("click", () => {
      this._panel.hidden = !this._panel.hidden;
    });
    root.querySelector(".all").addEventListener("click", () => {
      if (this._client) this._client.markAllRead().catch((error) => console.error("tocsin:", error));
    });
    this._buildPreferences();
    root.querySelector(".gear").addEventListener("click", () => this.showPreferences());
  }

  // -- preferences ----------------------------------------------------------------------------

  // The preferences view: built once, empty; filled from the server each time it opens.
  _buildPreferences() {
    this._muted = false;
    this._rows = new Map(); // type -> its row element
    this._entries = new Map(); // type -> the entry the server last gave for it
    const back = el("button", { className: "back", textContent: "‹ Back" });
    back.addEventListener("click", () => this.showList());
    this._error = el("div", { className: "error", role: "alert", part: "preferences-error",
                              hidden: true });
    this._status = el("div", { className: "status", hidden: true });
    this._mute = el("input", { type: "checkbox", role: "switch", className: "mute-all" });
    this._mute.addEventListener("change", () => this._changeMuted());
    this._muteRow = el("label", { className: "mute" }, this._mute, "Mute all (except critical)");
    this._types = el("div", { className: "types" });

    const field = (name, type, label) => {
      const input = el("input", { type, name, className: name });
      return [input, el("label", {}, label, " ", input)];
    };
    const [start, startLabel] = field("start", "time", "From");
    const [end, endLabel] = field("end", "time", "to");
    const [timezone, timezoneLabel] = field("timezone", "text", "Time zone");
    timezone.autocomplete = "off";
    timezone.spellcheck = false;
    this._quietInputs = { start, end, timezone, days: new Map() };
    const days = el("div", { className: "days", role: "group", "aria-label": "Days" });
    for (const day of DAYS) {
      const box = el("input", { type: "checkbox", name: "days", value: day, checked: true,
                                "aria-label": DAY_NAMES[day] });
      this._quietInputs.days.set(day, box);
      days.append(el("label", { title: DAY_NAMES[day] }, box, DAY_NAMES[day].slice(0, 2)));
    }
    this._quietState = el("div", { className: "state" });
    this._quietSave = el("button", { className: "save", textContent: "Save" });
    this._quietClear = el("button", { className: "clear", textContent: "Clear" });
    this._quietSave.addEventListener("click", () => this._saveQuietHours());
    this._quietClear.addEventListener("click", () => this._clearQuietHours());
    this._quiet = el("fieldset", { className: "quiet", part: "quiet-hours" },
      el("legend", { textContent: "Quiet hours" }), this._quietState,
      el("div", { className: "times" }, startLabel, endLabel), el("div", { className: "times" }, timezoneLabel),
      days, el("div", { className: "buttons" }, this._quietSave, this._quietClear));

    this._preferences = el("section", { className: "preferences", part: "preferences",
                                        hidden: true, "aria-label": "Preferences" },
      el("header", {}, back, el("strong", { textContent: "Preferences" })),
      this._error, this._status, this._muteRow, this._types, this._quiet);
    this._panel.append(this._preferences);
    this._fillQuietHours(null);
  }

  // Opens the preferences view in the panel, and loads them.
  async showPreferences() {
    this._panel.hidden = false;
    this._listView.hidden = true;
    this._preferences.hidden = false;
    this._showError(null);
    this._muteRow.hidden = true;
    this._types.replaceChildren();
    this._quiet.hidden = true;
    if (!this.client) {
      this._showStatus("Not connected");
      return;
    }
    this._showStatus("Loading…");
    try {
      this._renderPreferences(await this.client.preferences());
      this._showStatus(null);
    } catch (error) {
      this._showStatus(null);
      this._showError(error);
    }
  }

  showList() {
    this._preferences.hidden = true;
    this._listView.hidden = false;
  }

  _showStatus(text) {
    this._status.hidden = !text;
    this._status.textContent = text || "";
  }

  _showError(error) {
    const message = !error ? "" : error instanceof TocsinApiError ? error.message
      : "The server could not be reached; try again.";
    this._error.textContent = message;
    this._error.hidden = !message;
  }

  _renderPreferences(document_) {
    this._muted = Boolean(document_.muted);
    this._mute.checked = this._muted;
    this._muteRow.hidden = false;
    this._types.classList.toggle("muted", Boolean(document_.muted));
    this._rows.clear();
    this._entries.clear();
    this._types.replaceChildren();
    for (const entry of document_.types || []) {
      this._entries.set(entry.type, entry);
      const row = this._typeRow(entry);
      this._rows.set(entry.type, row);
      this._types.append(row);
    }
    this._fillQuietHours(document_.quiet_hours || null);
    this._quiet.hidden = false;
  }

  _typeRow(entry) {
    const label = entry.description || entry.type;
    const locked = Boolean(entry.critical);
    const row = el("div", { className: locked ? "type critical" : "type", part: "preference",
                            role: "group", "aria-label": label, "data-type": entry.type,
                            title: locked ? LOCKED : undefined });
    const name = el("div", { className: "name", textContent: label });
    if (locked) name.append(lockMark());
    const controls = el("div", { className: "controls" });
    // Muted, every type but the critical ones is off whatever its own switch says (the server
    // answers with the effective settings): the switch waits for "Mute all" to be turned off.
    const muted = this._muted && !locked;
    const enabled = el("input", { type: "checkbox", role: "switch", checked: Boolean(entry.enabled),
                                  disabled: locked || muted, "data-control": "enabled",
                                  title: muted ? MUTED : undefined });
    enabled.addEventListener("change", () => this._changeType(entry.type, ENABLED,
      () => this.client.setPreference(entry.type, { enabled: enabled.checked })));
    controls.append(el("label", {}, enabled, "On"));
    for (const channel of CHANNELS) {
      const on = Boolean(entry.channels && entry.channels[channel]);
      const box = el("input", { type: "checkbox", checked: on, disabled: locked,
                                "data-channel": channel });
      box.addEventListener("change", () => this._changeType(entry.type,
        `input[data-channel="${channel}"]`, () => this.client.setPreference(entry.type, { channels: { [channel]: box.checked } })));
      controls.append(el("label", {}, box, CHANNEL_LABELS[channel] || channel));
    }
    if (entry.customized && !locked) {
      const reset = el("button", { className: "reset", textContent: "Reset",
                                   "aria-label": `Reset ${label}` });
      reset.addEventListener("click", () => this._changeType(entry.type, ENABLED,
        () => this.client.resetPreference(entry.type)));
      controls.append(reset);
    }
    row.append(name, controls);
    return row;
  }

  // One change of a type's row: its controls wait for the answer; the row is drawn again from
  // the entry the server returns, or, when it refuses, from the entry it had before. `focus`
  // selects the control that keeps the keyboard focus in the new row.
  async _changeType(type, focus, request) {
    const row = this._rows.get(type);
    if (!row || !this.client) return;
    for (const control of row.querySelectorAll("input, button")) control.disabled = true;
    let entry = this._entries.get(type);
    try {
      entry = await request();
      this._entries.set(type, entry);
      this._showError(null);
    } catch (error) {
      this._showError(error);
    }
    if (this._rows.get(type) !== row) return; // the whole view was drawn again meanwhile
    const fresh = this._typeRow(entry);
    row.replaceWith(fresh);
    this._rows.set(type, fresh);
    const control = fresh.querySelector(focus);
    if (control) control.focus();
  }

  async _changeMuted() {
    const muted = this._mute.checked;
    this._mute.disabled = true;
    try {
      this._renderPreferences(await this.client.setMuted(muted));
      this._showError(null);
    } catch (error) {
      this._mute.checked = !muted;
      this._showError(error);
    } finally {
      this._mute.disabled = false;
    }
  }

  _fillQuietHours(window) {
    const shown = window || { start: "22:00", end: "07:00", timezone: browserTimeZone(),
                              days: DAYS };
    const inputs = this._quietInputs;
    inputs.start.value = shown.start;
    inputs.end.value = shown.end;
    inputs.timezone.value = shown.timezone || browserTimeZone();
    const days = shown.days && shown.days.length ? shown.days : DAYS;
    for (const [day, box] of inputs.days) box.checked = days.includes(day);
    this._quietState.textContent = window
      ? `On: ${window.start} to ${window.end} (${window.timezone})` : "Off";
    this._quiet.dataset.state = window ? "on" : "off";
    this._quietWindow = window;
    this._quietClear.disabled = !window;
  }

  // The form keeps what was typed when the server refuses it, so it can be corrected; the
  // state line above it still says what the server holds.
  async _saveQuietHours() {
    const inputs = this._quietInputs;
    const window = {
      start: inputs.start.value,
      end: inputs.end.value,
      timezone: inputs.timezone.value.trim(),
      days: DAYS.filter((day) => inputs.days.get(day).checked),
    };
    await this._quietRequest(() => this.client.setQuietHours(window));
  }

  async _clearQuietHours() {
    await this._quietRequest(async () => {
      await this.client.clearQuietHours();
      return null;
    });
  }

  async _quietRequest(request) {
    this._quietSave.disabled = true;
    this._quietClear.disabled = true;
    try {
      this._fillQuietHours(await request());
      this._showError(null);
    } catch (error) {
      this._showError(error);
    } finally {
      this._quietSave.disabled = false;
      this._quietClear.disabled = !this._quietWindow;
    }
  }

  _bind() {
    const client = this._client;
    if (!client || this._bound === client) return;
    this._bound = client;
    client.addEventListener("change", this._onChange);
    if (client.lastSeq !== null) this.render(); // it already holds a list: show it now
    client.start().catch((error) => console.error("tocsin:", error));
  }

  _unbind() {
    const client = this._bound;
    if (!client) return;
    this._bound = null;
    client.removeEventListener("change", this._onChange);
    client.stop();
  }

  render() {
    const count = this.client.unread.count;
    this._badge.hidden = count === 0;
    this._badge.textContent = count > 99 ? "99+" : String(count);
    this.setAttribute("data-unread", String(count));
    this._list.replaceChildren();
    const items = this.client.list();
    if (items.length === 0) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = "Nothing yet";
      this._list.append(empty);
    }
    for (const item of items) {
      const li = document.createElement("li");
      li.className = item.read ? "read" : "unread";
      li.dataset.id = item.id;
      li.dataset.seq = String(item.seq);
      const title = document.createElement("div");
      title.className = "title";
      title.textContent = item.title || item.type;
      const message = document.createElement("div");
      message.className = "message";
      message.textContent = item.message || "";
      const when = document.createElement("div");
      when.className = "when";
      // A grouped item's time is that of its newest notification.
      when.textContent = new Date(item.updated_at || item.created_at).toLocaleString();
      // A group of several: how many, in a chip beside the title (the title stays its own text).
      const grouped = item.group && item.group.count > 1 ? item.group.count : 0;
      if (grouped) {
        li.dataset.count = String(grouped);
        li.append(el("span", { className: "count", textContent: String(grouped),
                               title: `${grouped} notifications` }));
      }
      li.append(title, message, when);
      li.addEventListener("click", () => {
        if (!item.read) {
          this.client.markRead(item.id).catch((error) => console.error("tocsin:", error));
        }
        if (item.action_url && /^(https?:\/\/|\/(?!\/))/.test(item.action_url)) {
          window.open(item.action_url, "_blank", "noopener");
        }
      });
      this._list.append(li);
    }
  }
}

if (!customElements.get("tocsin-bell")) customElements.define("tocsin-bell", TocsinBell);
