// The link to the chat: a fresh token for every attempt, the socket through nginx, and
// reconnection with exponential backoff and full jitter. It knows nothing of the page: it
// reports frames, its state and why it ended through the handlers it is given.

export const BACKOFF_BASE_MS = 1000;
export const BACKOFF_CAP_MS = 30000;
const TOO_MANY_TABS_RETRY_MS = 30000; // long enough for another tab to close first
const TOKEN_TIMEOUT_MS = 10000;

/** Full jitter: anywhere between 0 and min(cap, base·2^attempt), so that tabs cut at the same
 * moment (a restart) do not all come back at the same moment. */
export function backoffDelay(attempt) {
  return Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
}

export class Connection {
  /**
   * handlers: onFrame(frame), onState({state: "connecting"|"connected"|"reconnecting"|"offline",
   * reason?, at?}), onEnd("deleted"|"session").
   */
  constructor({ room, csrf, wire, handlers }) {
    this.room = room;
    this.csrf = csrf;
    this.wire = wire;
    this.handlers = handlers;
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.ended = false;
    window.addEventListener("online", () => this.now());
    window.addEventListener("offline", () => {
      if (!this.socket) this.wait("network");
    });
  }

  get open() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN && this.welcomed;
  }

  send(frame) {
    if (!this.open) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  /** Try at once (the network came back). */
  now() {
    if (this.ended || this.socket) return;
    clearTimeout(this.timer);
    this.connect();
  }

  async connect() {
    if (this.ended) return;
    if (navigator.onLine === false) return this.wait("network");
    this.handlers.onState({ state: "connecting" });
    let response;
    try {
      response = await fetch(`/api/rooms/${encodeURIComponent(this.room)}/token`, {
        method: "POST",
        headers: { "X-CSRF-Token": this.csrf },
        credentials: "same-origin",
        signal: AbortSignal.timeout(TOKEN_TIMEOUT_MS),
      });
    } catch {
      return this.retry("unreachable");
    }
    // 401: no session; 403: the session (and so its CSRF token) is not the one this page had.
    if (response.status === 401 || response.status === 403) return this.end("session");
    if (response.status === 404) return this.end("deleted");
    if (!response.ok) return this.retry(response.status === 503 || response.status === 429 ? "busy" : "unreachable");
    let body;
    try {
      body = await response.json();
    } catch {
      return this.retry("unreachable");
    }
    this.openSocket(body);
  }

  openSocket({ token, ws_url: wsUrl }) {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    // The token rides in the subprotocol header, never in the URL (docs/design.md §4).
    const socket = new WebSocket(`${scheme}//${window.location.host}${wsUrl}`,
      [this.wire.SUBPROTOCOL, `${this.wire.BEARER_PREFIX}${token}`]);
    this.socket = socket;
    this.welcomed = false;
    let upgraded = false;
    socket.addEventListener("open", () => {
      upgraded = true;
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // not ours to show
      }
      if (frame.type === "welcome") {
        this.welcomed = true;
        this.attempt = 0; // a real connection: the next drop starts the backoff afresh
        this.handlers.onState({ state: "connected" });
      }
      this.handlers.onFrame(frame);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.closed(event.code, upgraded);
    });
  }

  closed(code, upgraded) {
    const w = this.wire;
    if (code === w.CLOSE_ROOM_DELETED) return this.end("deleted");
    if (code === w.CLOSE_SESSION_ENDED) return this.end("session");
    if (code === w.CLOSE_TOO_MANY_CONNECTIONS) return this.retry("tabs", TOO_MANY_TABS_RETRY_MS);
    if (code === w.CLOSE_SLOW_CONSUMER) return this.retry("slow");
    if (code === w.CLOSE_POLICY_VIOLATION) return this.retry("flood");
    if (code === w.CLOSE_GOING_AWAY) return this.retry("restart");
    // Refused before the upgrade (node full, restarting, unreachable): the browser only says 1006.
    if (!upgraded) return this.retry("busy");
    return this.retry("dropped");
  }

  retry(reason, fixedMs) {
    if (this.ended) return;
    if (navigator.onLine === false) return this.wait("network");
    const delay = fixedMs ?? backoffDelay(this.attempt);
    this.attempt += 1;
    const at = Date.now() + delay;
    this.handlers.onState({ state: "reconnecting", reason, at });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  wait(reason) {
    clearTimeout(this.timer);
    this.handlers.onState({ state: "offline", reason });
  }

  end(why) {
    this.ended = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close();
    this.socket = null;
    this.handlers.onState({ state: "offline", reason: why });
    this.handlers.onEnd(why);
  }
}
