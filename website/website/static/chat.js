// The chat page: fetch a short-lived token, open the socket through nginx, render frames.
// All user text is rendered with textContent, never as HTML. The wire contract's values
// (subprotocol, close codes, limits) come from the page's JSON data block, not from literals.
"use strict";

(() => {
  const wire = JSON.parse(document.getElementById("parley-wire").textContent);
  const main = document.getElementById("chat");
  const room = main.dataset.room;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const list = document.getElementById("messages");
  const members = document.getElementById("members");
  const statusEl = document.getElementById("status");
  const form = document.getElementById("composer");
  const input = document.getElementById("message-input");
  const deleteForm = document.getElementById("delete-room");

  const pending = new Map(); // client_id -> {text, li}: sent, not yet echoed back
  let socket = null;
  let me = null;
  let retryDelay = 1000;
  const TOO_MANY_TABS_RETRY_MS = 30000;
  let stopped = false;

  function setStatus(text, kind) {
    statusEl.textContent = text;
    statusEl.className = "status" + (kind ? " " + kind : "");
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function timeEl(ts) {
    const t = el("time", "", new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
    t.dateTime = ts;
    return t;
  }

  function scrollToEnd() {
    list.scrollTop = list.scrollHeight;
  }

  function messageItem(fromName, text, ts, mine) {
    const li = el("li", "message" + (mine ? " mine" : ""));
    li.append(el("span", "from", fromName), el("span", "text", text));
    if (ts) li.append(timeEl(ts));
    return li;
  }

  function addEvent(text, ts) {
    const li = el("li", "event", text);
    if (ts) li.append(" ", timeEl(ts));
    list.append(li);
    scrollToEnd();
  }

  function renderMembers(people) {
    members.replaceChildren(...people.map((p) => {
      const li = el("li", "", p.name);
      li.dataset.id = p.id;
      return li;
    }));
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "welcome":
        me = frame.you;
        renderMembers(frame.members);
        break;
      case "message": {
        const mine = me && frame.from.id === me.id;
        const waiting = frame.client_id && pending.get(frame.client_id);
        const li = messageItem(frame.from.name, frame.text, frame.ts, mine);
        if (waiting) {
          pending.delete(frame.client_id);
          waiting.li.replaceWith(li);
        } else {
          list.append(li);
        }
        scrollToEnd();
        break;
      }
      case "join":
        if (!members.querySelector(`li[data-id="${CSS.escape(frame.user.id)}"]`)) {
          const li = el("li", "", frame.user.name);
          li.dataset.id = frame.user.id;
          members.append(li);
        }
        addEvent(`${frame.user.name} joined`, frame.ts);
        break;
      case "leave": {
        const li = members.querySelector(`li[data-id="${CSS.escape(frame.user.id)}"]`);
        if (li) li.remove();
        addEvent(`${frame.user.name} left`, frame.ts);
        break;
      }
      case "error": {
        const waiting = frame.client_id && pending.get(frame.client_id);
        if (waiting) {
          pending.delete(frame.client_id);
          waiting.li.classList.remove("pending");
          waiting.li.classList.add("failed");
          waiting.li.append(el("span", "problem", `Not sent: ${frame.detail}`));
        } else {
          addEvent(`Problem: ${frame.detail}`);
        }
        break;
      }
    }
  }

  async function connect() {
    setStatus("connecting…");
    let response;
    try {
      response = await fetch(`/api/rooms/${encodeURIComponent(room)}/token`, {
        method: "POST",
        headers: { "X-CSRF-Token": csrf },
        credentials: "same-origin",
      });
    } catch {
      return retry();
    }
    if (response.status === 401 || response.status === 403) {
      toLogin();
      return;
    }
    if (response.status === 404) {
      stopped = true;
      setStatus("this room no longer exists", "bad");
      return;
    }
    if (!response.ok) return retry();
    const { token, ws_url: wsUrl } = await response.json();
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    // The token rides in the subprotocol header, never in the URL (docs/design.md §4).
    socket = new WebSocket(`${scheme}//${window.location.host}${wsUrl}`, [wire.SUBPROTOCOL, `${wire.BEARER_PREFIX}${token}`]);
    socket.addEventListener("open", () => {
      retryDelay = 1000;
      setStatus("connected", "ok");
      // Anything typed while offline, or unconfirmed when the link dropped, goes now.
      for (const [clientId, item] of pending) sendFrame(clientId, item.text);
    });
    socket.addEventListener("message", (event) => {
      try {
        onFrame(JSON.parse(event.data));
      } catch (err) {
        console.error("bad frame", err);
      }
    });
    socket.addEventListener("close", (event) => {
      socket = null;
      if (event.code === wire.CLOSE_ROOM_DELETED) {
        stopped = true;
        setStatus("this room was deleted", "bad");
        return;
      }
      if (event.code === wire.CLOSE_SESSION_ENDED) {
        stopped = true;
        toLogin();
        return;
      }
      if (event.code === wire.CLOSE_TOO_MANY_CONNECTIONS) {
        // The per-user socket cap: waiting lets another tab close before we try again.
        addEvent("Too many Parley tabs are open. Close one; this tab retries in 30 s.");
        retry(TOO_MANY_TABS_RETRY_MS);
        return;
      }
      if (event.code === wire.CLOSE_SLOW_CONSUMER) addEvent("The connection fell behind; reconnecting.");
      if (event.code === wire.CLOSE_POLICY_VIOLATION) addEvent("You were disconnected for sending too fast.");
      retry();
    });
  }

  function toLogin() {
    window.location.assign(`/login?next=${encodeURIComponent(window.location.pathname)}`);
  }

  // Exponential backoff with jitter: after a restart or a cut (4008), tabs do not all
  // come back in the same instant.
  function retry(fixedDelay) {
    if (stopped) return;
    const delay = fixedDelay || retryDelay / 2 + Math.random() * (retryDelay / 2);
    setStatus(`reconnecting in ${Math.round(delay / 1000)} s…`, "bad");
    setTimeout(connect, delay);
    retryDelay = Math.min(retryDelay * 2, 15000);
  }

  function sendFrame(clientId, text) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "message", text, client_id: clientId }));
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    const clientId = crypto.randomUUID ? crypto.randomUUID() : String(Date.now() + Math.random());
    const li = messageItem(me ? me.name : "You", text, null, true);
    li.classList.add("pending");
    list.append(li);
    scrollToEnd();
    pending.set(clientId, { text, li });
    sendFrame(clientId, text);
    input.value = "";
    input.focus();
  });

  if (deleteForm) {
    deleteForm.addEventListener("submit", (event) => {
      if (!window.confirm("Delete this room for everyone?")) event.preventDefault();
    });
  }

  connect();
})();
