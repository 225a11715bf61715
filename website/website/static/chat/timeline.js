// The message list: messages grouped by sender, own ones set apart, notices and dividers;
// pinned to the newest unless the reader scrolled up, then a "new messages" button.
// Every piece of user text goes through textContent: it is shown, never parsed as HTML.

const GROUP_WITHIN_MS = 5 * 60 * 1000; // a pause longer than this starts a new group
const PINNED_SLACK_PX = 48;

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function clock(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function timeEl(ts) {
  const t = el("time", "", clock(new Date(ts)));
  t.dateTime = ts;
  return t;
}

export class Timeline {
  constructor(list, jump) {
    this.list = list;
    this.jump = jump;
    this.last = null; // {id, at}: the sender and time of the message a new one may group with
    list.addEventListener("scroll", () => {
      if (this.pinned()) jump.hidden = true;
    });
    jump.addEventListener("click", () => {
      this.scrollToEnd();
      list.focus();
    });
  }

  pinned() {
    const l = this.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight <= PINNED_SLACK_PX;
  }

  scrollToEnd() {
    this.list.scrollTop = this.list.scrollHeight;
    this.jump.hidden = true;
  }

  // Adds a node at the end; follows it only if the reader was already at the end.
  place(node, { follow = false, replace = null } = {}) {
    const wasPinned = this.pinned();
    if (replace) replace.replaceWith(node);
    else this.list.append(node);
    if (wasPinned || follow) this.scrollToEnd();
    else if (!replace) this.jump.hidden = false;
    return node;
  }

  /** A message: {from: {id, name}, text, ts?, mine}; ts is absent while it is pending. */
  message(msg, options = {}) {
    const at = msg.ts ? Date.parse(msg.ts) : Date.now();
    const last = options.replace ? options.groupWith : this.last;
    const grouped = Boolean(last && last.id === msg.from.id && at - last.at < GROUP_WITHIN_MS);
    const li = el("li", "message" + (msg.mine ? " mine" : "") + (grouped ? " grouped" : ""));
    const meta = el("div", "meta");
    meta.append(el("span", "from", msg.from.name));
    if (msg.ts) meta.append(timeEl(msg.ts));
    li.append(meta, el("p", "text", msg.text));
    li.groupWith = last;
    if (!options.replace) this.last = { id: msg.from.id, at };
    return this.place(li, options);
  }

  notice(text, ts) {
    const li = el("li", "event", text);
    if (ts) li.append(" · ", timeEl(ts));
    this.last = null;
    return this.place(li);
  }

  divider(text, kind) {
    const li = el("li", `divider ${kind}`);
    li.append(el("span", "", text));
    this.last = null;
    return this.place(li);
  }

  /** A sent message that will never be confirmed: say so, keep its text visible. */
  notSent(li, why) {
    li.classList.remove("pending");
    li.classList.add("failed");
    li.append(el("span", "problem", `Not sent: ${why}`));
  }
}
