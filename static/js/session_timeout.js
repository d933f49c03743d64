// Warns before the session ends and follows to the login page when it has. The server decides when a session ends
// (sharedcare/sessions.py); this script only learns the deadlines from its own <script> element's data attributes
// and, before it warns or leaves, asks the server again, since the user may have been active in another tab.
// Asking is not activity: it never extends the session.
(() => {
  "use strict";

  const config = document.currentScript.dataset;
  const warningMs = Number(config.warningSeconds) * 1000;
  let endsAt = 0;
  let endIsFinal = false;
  let timer = null;
  let ticker = null;
  let dialog = null;

  function learn(idleSeconds, lifetimeSeconds) {
    endsAt = Date.now() + Math.min(idleSeconds, lifetimeSeconds) * 1000;
    // Staying signed in cannot move the absolute limit: the dialog then only tells the user to save their work.
    endIsFinal = lifetimeSeconds <= idleSeconds;
  }

  function leave() {
    const here = window.location.pathname + window.location.search;
    window.location.assign(`${config.loginUrl}?next=${encodeURIComponent(here)}`);
  }

  async function ask(url, options) {
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, ...options });
      return await response.json();
    } catch {
      return null; // Offline or the server is unreachable: carry on with what is known.
    }
  }

  function inWords(milliseconds) {
    const seconds = Math.max(0, Math.ceil(milliseconds / 1000));
    if (seconds >= 60) {
      const minutes = Math.ceil(seconds / 60);
      return minutes === 1 ? "1 minute" : `${minutes} minutes`;
    }
    return seconds === 1 ? "1 second" : `${seconds} seconds`;
  }

  function element(tag, attributes, text) {
    const made = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, value);
    if (text) made.textContent = text;
    return made;
  }

  function build() {
    dialog = element("dialog", {
      class: "session-timeout",
      "aria-labelledby": "session-timeout-heading",
      "aria-describedby": "session-timeout-message",
    });
    dialog.append(element("h2", { id: "session-timeout-heading", class: "session-timeout__heading" }, "You are about to be signed out"));
    const message = element("p", { id: "session-timeout-message" });
    message.append(element("span", { class: "session-timeout__reason" }), " You will be signed out in ");
    message.append(element("strong", { class: "session-timeout__countdown" }), ".");
    dialog.append(message);
    const actions = element("div", { class: "session-timeout__actions" });
    const stay = element("button", { type: "button", class: "session-timeout__stay" }, "Stay signed in");
    const close = element("button", { type: "button", class: "session-timeout__close" }, "Close");
    const signOut = element("form", { method: "post", action: config.logoutUrl });
    signOut.append(element("input", { type: "hidden", name: "csrfmiddlewaretoken", value: config.csrfToken }));
    signOut.append(element("button", { type: "submit", class: "session-timeout__sign-out" }, "Sign out now"));
    actions.append(stay, close, signOut);
    dialog.append(actions);
    stay.addEventListener("click", stayed);
    close.addEventListener("click", () => dialog.close());
    // Escape closes a modal dialog; when the session can still be extended, that is taken as staying signed in.
    dialog.addEventListener("cancel", (event) => {
      if (!endIsFinal) {
        event.preventDefault();
        stayed();
      }
    });
    document.body.append(dialog);
  }

  function show() {
    if (!dialog) build();
    dialog.querySelector(".session-timeout__reason").textContent = endIsFinal
      ? "You have been signed in for as long as a session may last. Save your work; you will need to sign in again."
      : "For your security, you are signed out when you have done nothing for a while. Anything you have not saved will be lost.";
    dialog.querySelector(".session-timeout__stay").hidden = endIsFinal;
    dialog.querySelector(".session-timeout__close").hidden = !endIsFinal;
    tick();
    if (!dialog.open) {
      dialog.showModal();
      dialog.querySelector(endIsFinal ? ".session-timeout__close" : ".session-timeout__stay").focus();
    }
    clearInterval(ticker);
    ticker = setInterval(tick, 1000);
  }

  function hide() {
    clearInterval(ticker);
    if (dialog && dialog.open) dialog.close();
  }

  function tick() {
    const left = endsAt - Date.now();
    dialog.querySelector(".session-timeout__countdown").textContent = inWords(left);
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(check, Math.max(0, endsAt - warningMs - Date.now()));
  }

  async function check() {
    const state = await ask(config.statusUrl, {});
    if (state && !state.signed_in) return leave();
    if (state) learn(state.idle_seconds, state.lifetime_seconds);
    clearTimeout(timer);
    const left = endsAt - Date.now();
    if (left <= 0) {
      if (!state) return leave();
      // The server's clock still has a moment to go: ask again once it has passed.
      timer = setTimeout(check, 1000);
      return undefined;
    }
    if (left > warningMs) {
      hide();
      return schedule();
    }
    show();
    // Asked again while warning, in case the user carries on in another tab, and at the end.
    timer = setTimeout(check, Math.min(left, 30000));
    return undefined;
  }

  async function stayed() {
    const state = await ask(config.keepAliveUrl, { method: "POST", headers: { Accept: "application/json", "X-CSRFToken": config.csrfToken } });
    if (state && !state.signed_in) return leave();
    if (state) learn(state.idle_seconds, state.lifetime_seconds);
    hide();
    return check();
  }

  learn(Number(config.idleSeconds), Number(config.lifetimeSeconds));
  schedule();
})();
