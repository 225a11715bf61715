// "Ann is typing…": shown from the chat's typing frames, hidden 5 s after the last one or as
// soon as that person's message arrives. The page sends at most one typing frame per 2 s.

export const TYPING_SHOWN_MS = 5000;
export const TYPING_EVERY_MS = 2000;

export function typingText(names) {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return "Several people are typing…";
}

export class TypingIndicator {
  constructor(node) {
    this.node = node;
    this.typists = new Map(); // id -> {name, timer}
  }

  saw(user) {
    const known = this.typists.get(user.id);
    if (known) clearTimeout(known.timer);
    const timer = setTimeout(() => this.stopped(user.id), TYPING_SHOWN_MS);
    this.typists.set(user.id, { name: user.name, timer });
    this.render();
  }

  stopped(id) {
    const known = this.typists.get(id);
    if (!known) return;
    clearTimeout(known.timer);
    this.typists.delete(id);
    this.render();
  }

  clear() {
    for (const id of [...this.typists.keys()]) this.stopped(id);
  }

  render() {
    this.node.textContent = typingText([...this.typists.values()].map((t) => t.name));
  }
}

/** Calls send() at most once per TYPING_EVERY_MS while the person keeps typing. */
export class TypingSender {
  constructor(send) {
    this.send = send;
    this.last = 0;
  }

  poke() {
    const now = Date.now();
    if (now - this.last < TYPING_EVERY_MS) return;
    if (this.send()) this.last = now;
  }

  reset() {
    this.last = 0;
  }
}
