// Every page: forget this tab's chat history on logout (and on the login page), live checks
// of the room name, and each room's history forgotten when its owner deletes it.

import { forgetAll, forgetRoom } from "./chat/history.js";

if (document.body.hasAttribute("data-forget-history")) forgetAll();

for (const form of document.querySelectorAll("form[data-logout]")) {
  form.addEventListener("submit", forgetAll);
}

for (const form of document.querySelectorAll("form[data-forget-room]")) {
  form.addEventListener("submit", () => forgetRoom(form.dataset.forgetRoom));
}

const roomName = document.getElementById("room-name");
if (roomName) {
  const hint = document.getElementById("room-name-hint");
  const rule = hint.textContent;
  const check = () => {
    const v = roomName.validity;
    const bad = roomName.value !== "" && (v.patternMismatch || v.tooShort || v.tooLong);
    roomName.setAttribute("aria-invalid", String(bad));
    if (roomName.value === "") hint.textContent = rule;
    else if (/[A-Z]/.test(roomName.value)) hint.textContent = "Lowercase only: " + rule;
    else if (bad) hint.textContent = "Not yet a valid name: " + rule;
    else hint.textContent = "Looks good.";
  };
  roomName.addEventListener("input", check);
  document.getElementById("create-room").addEventListener("submit", (event) => {
    check();
    if (!roomName.value || roomName.getAttribute("aria-invalid") === "true") {
      event.preventDefault();
      roomName.focus();
    }
  });
}
