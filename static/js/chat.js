// The chat page's script (no third-party code). Without it the page works by plain form
// posts; with it, the same posts return only what is new (chat/_update.html), the page
// polls for replies, and this device keeps the session token (localStorage, never a
// cookie) for [chat] resume_minutes so that a visitor coming back picks the conversation up.
(function () {
  "use strict";
  var root = document.querySelector("[data-chat]");
  if (!root) { return; }
  var base = root.dataset.base;
  var key = "capteo.chat." + root.dataset.slug;
  var resumeMs = Number(root.dataset.resumeMinutes || 30) * 60000;
  // Inside a business's site (an iframe that embed.js sizes to the page) nothing scrolls here.
  var embedded = document.body.classList.contains("embedded");
  var timer = null;
  var busy = false;

  function remember(token) {
    try { localStorage.setItem(key, JSON.stringify({ token: token, at: Date.now() })); } catch (e) { /* private mode */ }
  }
  function forget() { try { localStorage.removeItem(key); } catch (e) { /* private mode */ } }
  function kept() {
    try {
      var saved = JSON.parse(localStorage.getItem(key) || "null");
      return saved && typeof saved.token === "string" && Date.now() - saved.at < resumeMs ? saved.token : null;
    } catch (e) { return null; }
  }

  function composer() { return document.getElementById("chat-composer"); }
  function session() {
    var form = composer();
    return form ? form.elements.session.value : null;
  }
  function after() {
    var form = composer();
    return form ? form.elements.after.value : "0";
  }

  function post(path, body) {
    return fetch(base + path + window.location.search, {
      method: "POST", body: body, credentials: "omit",
      headers: { "x-capteo-chat": "1" }
    }).then(function (response) {
      return response.text().then(function (text) { return { status: response.status, text: text }; });
    });
  }

  function parts(html) {
    var doc = new DOMParser().parseFromString("<body>" + html + "</body>", "text/html");
    var found = {};
    doc.querySelectorAll("template[data-part]").forEach(function (t) { found[t.dataset.part] = t; });
    return found;
  }

  // The newest message in view, above the composer that stays pinned at the bottom on phones.
  function reveal() {
    if (embedded) { return; }
    var status = document.getElementById("chat-status");
    var dock = document.getElementById("chat-dock");
    if (!status || !status.scrollIntoView) { return; }
    status.style.scrollMarginBottom = ((dock ? dock.offsetHeight : 0) + 12) + "px";
    status.scrollIntoView({ block: "end" });
  }

  function grow(area) {
    area.style.height = "auto";
    area.style.height = Math.min(area.scrollHeight + 2, 160) + "px";
  }

  function apply(html) {
    var p = parts(html);
    if (!p.state) { return null; }
    var thread = document.getElementById("chat-thread");
    if (p.messages && thread) {
      thread.querySelectorAll(".chat-pending").forEach(function (li) { li.remove(); });
      Array.prototype.forEach.call(p.messages.content.children, function (li) {
        if (!thread.querySelector('[data-id="' + li.dataset.id + '"]')) {
          var node = document.importNode(li, true);
          node.removeAttribute("id");
          thread.appendChild(node);
        }
      });
    }
    [["status", "chat-status"], ["choices", "chat-choices"], ["error", "chat-error"]].forEach(function (pair) {
      var target = document.getElementById(pair[1]);
      if (target && p[pair[0]]) {
        target.replaceChildren(document.importNode(p[pair[0]].content, true));
      }
    });
    var form = composer();
    var state = p.state.dataset;
    if (form) {
      var area = form.elements.message;
      if (document.getElementById("chat-error-text")) {
        area.setAttribute("aria-invalid", "true");
        area.setAttribute("aria-describedby", "chat-error-text");
      } else {
        area.removeAttribute("aria-invalid");
        area.removeAttribute("aria-describedby");
      }
      if (Number(state.lastId) > Number(form.elements.after.value)) { form.elements.after.value = state.lastId; }
      form.querySelectorAll("[data-no-script-only]").forEach(function (el) { el.hidden = true; });
    }
    if (state.over === "1") {
      forget();
      stop();
      var dock = document.getElementById("chat-dock");
      if (dock && p.over) { dock.replaceChildren(document.importNode(p.over.content, true)); }
    }
    reveal();
    return state;
  }

  function schedule(waiting) {
    stop();
    timer = window.setTimeout(poll, waiting ? 1200 : 4000);
  }
  function stop() { if (timer) { window.clearTimeout(timer); timer = null; } }

  function poll() {
    var token = session();
    if (!token) { return; }
    if (busy) { schedule(false); return; }
    var body = new URLSearchParams({ session: token, after: after() });
    post("/poll", body).then(function (r) {
      if (r.status === 404) { forget(); stop(); return; }
      var state = apply(r.text);
      if (!state || state.over !== "1") { schedule(state && state.waiting === "1"); }
    }).catch(function () { schedule(false); });
  }

  // The visitor's words show at once, with the assistant "writing", until the server answers.
  function pending(text) {
    var thread = document.getElementById("chat-thread");
    if (!thread) { return; }
    var li = document.createElement("li");
    li.className = "chat-message chat-visitor chat-pending";
    li.setAttribute("aria-hidden", "true");
    var bubble = document.createElement("div");
    bubble.className = "chat-bubble";
    var p = document.createElement("p");
    p.className = "pre";
    p.textContent = text;
    bubble.appendChild(p);
    li.appendChild(bubble);
    thread.appendChild(li);
    var status = document.getElementById("chat-status");
    var typing = document.querySelector("[data-typing-template]");
    if (status && typing && !status.querySelector(".chat-team-note")) {
      status.replaceChildren(document.importNode(typing.content, true));
    }
    var choices = document.getElementById("chat-choices");
    if (choices) { choices.replaceChildren(); }
    reveal();
  }

  function send(message, shown) {
    var token = session();
    if (!token || busy || !message.trim()) { return; }
    busy = true;
    var form = composer();
    var body = new URLSearchParams({ session: token, after: after(), message: message });
    var honeypot = form.querySelector(".hp input");
    if (honeypot && honeypot.value) { body.set(honeypot.name, honeypot.value); }
    form.setAttribute("aria-busy", "true");
    pending(shown || message);
    post("/send", body).then(function (r) {
      busy = false;
      form.removeAttribute("aria-busy");
      var state = apply(r.text);
      if (!state) {
        document.querySelectorAll(".chat-pending").forEach(function (li) { li.remove(); });
      }
      if (r.status < 400) {
        if (!shown) { form.elements.message.value = ""; grow(form.elements.message); }
        if (!state || state.over !== "1") { remember(token); }
      }
      if (!state || state.over !== "1") { schedule(state && state.waiting === "1"); }
      if (document.body.contains(form)) { form.elements.message.focus({ preventScroll: true }); }
    }).catch(function () {
      busy = false;
      form.removeAttribute("aria-busy");
      document.querySelectorAll(".chat-pending").forEach(function (li) { li.remove(); });
      schedule(false);
    });
  }

  function wire() {
    document.querySelectorAll("[data-no-script-only]").forEach(function (el) { el.hidden = true; });
    var form = composer();
    if (!form) { return; }
    // After the start (or a plain post), the address is the page's again: a reload resumes, never re-posts.
    if (/\/(start|send)$/.test(window.location.pathname) && window.history.replaceState) {
      window.history.replaceState(null, "", base + window.location.search);
    }
    remember(form.elements.session.value);
    var area = form.elements.message;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      send(area.value);
    });
    area.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        send(area.value);
      }
    });
    area.addEventListener("input", function () { grow(area); });
    grow(area);
    // Quick answers: their value is sent as the message, their label shown meanwhile.
    root.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest(".chat-quick button") : null;
      if (button) {
        event.preventDefault();
        send(button.value, button.textContent);
        area.focus({ preventScroll: true });
      }
    });
    reveal();
    var waiting = document.querySelector("[data-waiting]");
    schedule(Boolean(waiting));
  }

  // Back on this device within the resume window: the conversation again, not the notice.
  var consent = document.getElementById("chat-consent");
  var token = consent ? kept() : null;
  if (token) {
    post("/resume", new URLSearchParams({ session: token })).then(function (r) {
      if (r.status !== 200) { forget(); return; }
      var holder = new DOMParser().parseFromString("<body>" + r.text + "</body>", "text/html");
      var fresh = holder.getElementById("chat-resumed");
      if (!fresh) { return; }
      consent.replaceWith.apply(consent, Array.prototype.map.call(fresh.childNodes, function (n) {
        return document.importNode(n, true);
      }));
      wire();
    }).catch(function () { /* the notice stays */ });
  } else {
    wire();
  }
})();
