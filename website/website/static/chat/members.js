// The members sidebar, live from welcome and presence frames; on a phone it is a drawer.

import { el } from "./timeline.js";

export class Members {
  constructor(list, count, panel, toggle, close) {
    this.list = list;
    this.count = count;
    this.panel = panel;
    this.toggle = toggle;
    this.people = new Map(); // id -> name, in arrival order
    this.me = null;
    toggle.addEventListener("click", () => this.open(!panel.classList.contains("open")));
    close.addEventListener("click", () => this.open(false));
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.open(false);
    });
  }

  open(yes) {
    this.panel.classList.toggle("open", yes);
    this.toggle.setAttribute("aria-expanded", String(yes));
    if (yes) this.panel.querySelector("button").focus();
    else this.toggle.focus();
  }

  reset(people, me) {
    this.me = me;
    this.people = new Map(people.map((p) => [p.id, p.name]));
    this.render();
  }

  // A presence frame: `left` removed, `joined` added (set semantics: naming someone already
  // listed, or not listed, changes nothing), rendered once. Returns who really came and went.
  update(joined, left) {
    const changed = { joined: [], left: [] };
    for (const user of left) {
      if (this.people.delete(user.id)) changed.left.push(user);
    }
    for (const user of joined) {
      if (!this.people.has(user.id)) changed.joined.push(user);
      this.people.set(user.id, user.name); // a new name replaces the old
    }
    this.render();
    return changed;
  }

  clear() {
    this.people.clear();
    this.render();
  }

  render() {
    this.list.replaceChildren(...[...this.people].map(([id, name]) => {
      const li = el("li", "", name);
      li.dataset.id = id;
      if (this.me && id === this.me.id) li.append(el("span", "muted", " (you)"));
      return li;
    }));
    this.count.textContent = String(this.people.size);
  }
}

// "Ann joined", "Ann and Bob joined", "Ann, Bob and Cy joined", "Ann, Bob and 3 others joined":
// a join storm is one line, not thousands.
export function summarise(users, verb) {
  const names = users.map((u) => u.name);
  if (names.length === 1) return `${names[0]} ${verb}`;
  if (names.length <= 3) return `${names.slice(0, -1).join(", ")} and ${names.at(-1)} ${verb}`;
  const others = names.length - 2;
  return `${names[0]}, ${names[1]} and ${others} others ${verb}`;
}
