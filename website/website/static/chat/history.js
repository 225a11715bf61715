// What this tab has shown in a room, kept in sessionStorage (this tab only) so a reload, Back
// or coming back to the room shows it again. The server stores no message; this is the only
// memory, and it is forgotten at logout and when the room is deleted.

const PREFIX = "parley:";
export const HISTORY_CAP = 500; // messages per room; the oldest (and notices before them) go first

function read(key, fallback) {
  try {
    const raw = sessionStorage.getItem(key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback; // storage off, or a value we did not write: start afresh
  }
}

function write(key, value) {
  try {
    sessionStorage.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    return false; // quota or storage off: the page still works, it just forgets
  }
}

/** Forget everything Parley kept in this tab (logout, or a session that ended). */
export function forgetAll() {
  try {
    for (let i = sessionStorage.length - 1; i >= 0; i--) {
      const key = sessionStorage.key(i);
      if (key && key.startsWith(PREFIX)) sessionStorage.removeItem(key);
    }
  } catch {
    // storage off: nothing was kept
  }
}

/** Forget one room's history and draft (the room was deleted). */
export function forgetRoom(room) {
  try {
    sessionStorage.removeItem(`${PREFIX}room:${room}`);
    sessionStorage.removeItem(`${PREFIX}draft:${room}`);
  } catch {
    // storage off
  }
}

export class History {
  constructor(room) {
    this.room = room;
    this.key = `${PREFIX}room:${room}`;
    this.draftKey = `${PREFIX}draft:${room}`;
    const stored = read(this.key, []);
    this.entries = Array.isArray(stored) ? stored : [];
  }

  add(entry) {
    this.entries.push(entry);
    let messages = this.entries.filter((e) => e.kind === "message").length;
    while (messages > HISTORY_CAP) {
      if (this.entries.shift().kind === "message") messages--;
    }
    if (!write(this.key, this.entries)) {
      this.entries.splice(0, Math.ceil(this.entries.length / 2)); // make room, try once more
      write(this.key, this.entries);
    }
  }

  get draft() {
    return read(this.draftKey, "");
  }

  set draft(text) {
    if (text) {
      write(this.draftKey, text);
      return;
    }
    try {
      sessionStorage.removeItem(this.draftKey);
    } catch {
      // storage off
    }
  }

  forget() {
    forgetRoom(this.room);
    this.entries = [];
  }
}
