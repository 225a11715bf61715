// The chat page's entry module, its wiring: the connection's frames and states go to the
// timeline, the members, the typing line, the status and the composer; this tab's history is
// restored and extended.
// The wire contract's values come from the page's JSON data block, not from literals here.

import { Connection } from "./chat/connection.js";
import { forgetAll, History } from "./chat/history.js";
import { Members, summarise } from "./chat/members.js";
import { clock, Timeline } from "./chat/timeline.js";
import { TypingIndicator, TypingSender } from "./chat/typing.js";

const $ = (id) => document.getElementById(id);
const wire = JSON.parse($("parley-wire").textContent);
const room = $("main").dataset.room;
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const statusEl = $("status");
const note = $("connection-note");
const form = $("composer");
const input = $("message-input");
const sendButton = $("send");
const counter = $("counter");
const composerError = $("composer-error");
const COUNTER_FROM = 200; // characters left at which the counter appears

const timeline = new Timeline($("messages"), $("jump"));
const members = new Members($("members"), $("member-count"), $("members-panel"), $("members-toggle"), $("members-close"));
const typing = new TypingIndicator($("typing"));
const history = new History(room);
const pending = new Map(); // client_id -> the pending <li>, until the chat echoes it
let me = null;
let connected = false;
let everConnected = false;
let offlineSince = null; // when the live stream stopped, for the divider once it resumes
let ended = false;
let countdown = null;

// ------------------------------------------------------------------ history

function show(entry) {
  if (entry.kind === "message") timeline.message(entry, { follow: true });
  else if (entry.kind === "event") timeline.notice(entry.text, entry.ts);
  else if (entry.kind === "divider") timeline.divider(entry.text, entry.style);
}

function record(entry) {
  history.add(entry);
  show(entry);
}

$("messages").setAttribute("aria-busy", "true");
for (const entry of history.entries) show(entry);
if (history.entries.length) timeline.divider("shown again from this tab · live from here", "resume");
$("messages").setAttribute("aria-busy", "false");
timeline.scrollToEnd();
input.value = history.draft;

// ------------------------------------------------------------------ status and notes

const NOTES = {
  restart: "The chat is restarting.",
  busy: "The chat is busy or out of reach right now; trying again later.",
  unreachable: "Parley cannot be reached right now.",
  tabs: "Too many Parley tabs are open: close one. This tab tries again later.",
  slow: "The connection fell behind and was cut.",
  flood: "You were disconnected for sending too fast.",
  dropped: "The connection dropped.",
  network: "You are offline. Parley reconnects when the network is back.",
  deleted: "This room was deleted. Nothing more can be sent here.",
  session: "Your session ended. Taking you to the login page…",
};

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

function setNote(reason) {
  note.hidden = !reason;
  note.textContent = reason ? NOTES[reason] || "" : "";
}

function onState(s) {
  clearInterval(countdown);
  const wasConnected = connected;
  connected = s.state === "connected";
  if (wasConnected && !connected) {
    offlineSince = new Date();
    typing.clear();
    for (const [id, li] of pending) {
      timeline.notSent(li, "the connection dropped before the chat confirmed it.");
      pending.delete(id);
    }
  }
  if (s.state === "connecting") setStatus("connecting", "connecting…");
  if (s.state === "connected") {
    setStatus("connected", "connected");
    setNote(null);
  }
  if (s.state === "reconnecting") {
    setNote(s.reason);
    const tick = () => {
      const left = Math.max(0, Math.ceil((s.at - Date.now()) / 1000));
      setStatus("reconnecting", `reconnecting in ${left} s`);
    };
    tick();
    countdown = setInterval(tick, 1000);
  }
  if (s.state === "offline") {
    setStatus("offline", "offline");
    setNote(s.reason);
  }
  updateComposer();
}

function onEnd(why) {
  ended = true;
  if (why === "session") {
    forgetAll();
    window.location.assign(`/login?next=${encodeURIComponent(window.location.pathname)}`);
    return;
  }
  history.forget(); // the room is gone: so is what this tab remembered of it
  input.disabled = true;
  updateComposer();
}

// ------------------------------------------------------------------ frames

let unread = 0;
const baseTitle = document.title;

function countUnread() {
  if (!document.hidden) return;
  unread += 1;
  document.title = `(${unread}) ${baseTitle}`;
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) return;
  unread = 0;
  document.title = baseTitle;
});

function onFrame(frame) {
  switch (frame.type) {
    case "welcome":
      me = frame.you;
      members.reset(frame.members, me);
      if (everConnected && offlineSince) {
        const text = `offline from ${clock(offlineSince)} to ${clock(new Date())} — messages sent meanwhile are not shown`;
        record({ kind: "divider", text, style: "offline" });
      }
      everConnected = true;
      offlineSince = null;
      break;
    case "message": {
      typing.stopped(frame.from.id);
      const mine = Boolean(me && frame.from.id === me.id);
      const entry = { kind: "message", from: frame.from, text: frame.text, ts: frame.ts, mine };
      history.add(entry);
      const waiting = frame.client_id && pending.get(frame.client_id);
      if (waiting) {
        pending.delete(frame.client_id);
        timeline.message(entry, { replace: waiting, groupWith: waiting.groupWith });
      } else {
        timeline.message(entry);
        if (!mine) countUnread();
      }
      break;
    }
    case "presence": {
      // Set semantics: only real changes to this tab's list are told, one line per kind.
      const { joined, left } = members.update(frame.joined, frame.left);
      for (const user of left) typing.stopped(user.id);
      if (joined.length) record({ kind: "event", text: summarise(joined, "joined"), ts: frame.ts });
      if (left.length) record({ kind: "event", text: summarise(left, "left"), ts: frame.ts });
      break;
    }
    case "typing":
      if (!me || frame.user.id !== me.id) typing.saw(frame.user);
      break;
    case "error": {
      const waiting = frame.client_id && pending.get(frame.client_id);
      if (waiting) {
        pending.delete(frame.client_id);
        timeline.notSent(waiting, frame.detail);
      }
      composerError.textContent = `The chat refused that: ${frame.detail}.`;
      break;
    }
  }
}

const connection = new Connection({ room, csrf, wire, handlers: { onFrame, onState, onEnd } });

// ------------------------------------------------------------------ composer

function newClientId() {
  // crypto.randomUUID exists only in secure contexts; getRandomValues everywhere.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function length(text) {
  return [...text].length; // code points, as the chat counts
}

function updateComposer() {
  const left = wire.MAX_TEXT_CHARS - length(input.value.trim());
  counter.classList.toggle("over", left < 0);
  counter.textContent = left < 0 ? `${-left} characters too many`
    : left <= COUNTER_FROM ? `${left} characters left` : "";
  sendButton.disabled = ended || !connected || left < 0 || !input.value.trim();
}

const typingSender = new TypingSender(() => connection.send({ type: "typing" }));

input.addEventListener("input", () => {
  history.draft = input.value;
  composerError.textContent = "";
  updateComposer();
  if (input.value.trim()) typingSender.poke();
});

input.addEventListener("keydown", (event) => {
  // Enter sends, Shift+Enter is a new line; an IME composing text keeps its Enter.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || ended) return;
  if (!connected) {
    composerError.textContent = "Not connected: your message is kept here; send it once the chat is back.";
    return;
  }
  if (length(text) > wire.MAX_TEXT_CHARS) return;
  const clientId = newClientId();
  if (!connection.send({ type: "message", text, client_id: clientId })) return;
  const li = timeline.message({ from: me, text, mine: true }, { follow: true });
  li.classList.add("pending");
  pending.set(clientId, li);
  typingSender.reset();
  input.value = "";
  history.draft = "";
  updateComposer();
  input.focus();
});

// A page restored from the back/forward cache has a dead socket: load it afresh.
window.addEventListener("pageshow", (event) => {
  if (event.persisted) window.location.reload();
});

updateComposer();
connection.connect();
