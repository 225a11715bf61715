// The members sidebar, live from welcome/join/leave; on a phone it is a drawer.

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

  add(user) {
    this.people.set(user.id, user.name);
    this.render();
  }

  remove(user) {
    this.people.delete(user.id);
    this.render();
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
