// Capteo's only script besides htmx. No inline scripts anywhere (the CSP forbids them).
(function () {
  "use strict";
  var KEY = "capteo.lang";

  function saved() {
    try { return localStorage.getItem(KEY); } catch (e) { return null; }
  }

  // A URL without a language: the choice saved in this browser wins, then the
  // language the server suggested from Accept-Language.
  var chooser = document.getElementById("lang-chooser");
  if (chooser) {
    var choice = saved();
    var lang = (choice === "fr" || choice === "en") ? choice : chooser.dataset.suggested;
    window.location.replace("/" + lang + chooser.dataset.target);
  }

  // The language switch (and the chooser's links) remember the choice in this
  // browser only: localStorage, never a cookie.
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("[data-remember-lang]") : null;
    if (link) {
      try { localStorage.setItem(KEY, link.dataset.rememberLang); } catch (e) { /* private mode */ }
    }
  });

  // After an htmx swap, focus goes where the person should look, never back to <body>:
  // the first error (an alert, an invalid field), else what the server marked [data-focus]
  // (a confirmation step), else what the action names in data-focus-after (an id), else the
  // heading of the section the action was in. Errors are swapped too (409, 422: _head.html).
  var trigger = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    // Only what a person did: a part that loads itself (hx-trigger="load", a poll) moves no focus.
    var cause = event.detail.requestConfig && event.detail.requestConfig.triggeringEvent;
    if (cause && cause.type !== "load" && cause.type !== "every") { trigger = event.detail.elt; }
    else if (!cause && !event.detail.elt.matches("[hx-trigger]")) { trigger = event.detail.elt; }
  });

  function focusable(el) {
    if (!el.matches("a[href], button, input, select, textarea, [tabindex]")) {
      el.setAttribute("tabindex", "-1");
    }
    return el;
  }

  function sectionHeading(el) {
    var section = el && el.closest ? el.closest("section[aria-labelledby]") : null;
    return section ? section.getAttribute("aria-labelledby") : null;
  }

  function focusTarget(root, origin) {
    var found = root.querySelector("[role=alert], [aria-invalid=true]") || root.querySelector("[data-focus]");
    if (found) { return found; }
    var wanted = origin && origin.closest ? origin.closest("[data-focus-after]") : null;
    var id = wanted ? wanted.dataset.focusAfter : sectionHeading(origin);
    return (id && document.getElementById(id)) || root.querySelector("h1, h2") || root;
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    var origin = trigger;
    trigger = null;
    var target = event.detail.target;
    // An outerHTML swap leaves the old target detached: find its replacement by id. Only
    // targets that ask for it (#lead) are handled: a search box keeps its focus while typing.
    var root = target && target.id ? document.getElementById(target.id) : null;
    if (!root || !root.hasAttribute("data-manage-focus")) { return; }
    var el = focusable(focusTarget(root, origin));
    el.focus({ preventScroll: true });
    if (el.scrollIntoView) { el.scrollIntoView({ block: "nearest" }); }
  });
})();

// ---- Embedding and copying (settings' snippet; the form inside a business's site) --------------
(function () {
  "use strict";

  // The form in an iframe (?embed=1) tells the page around it how tall it is, whenever that
  // changes; static/js/embed.js on that page sizes the iframe. Only a number is sent, so
  // any parent may read it (the embedding site's origin is not known here).
  function reportHeight() {
    if (window.parent === window || !document.body.classList.contains("embedded")) { return; }
    var last = 0;
    function post() {
      var height = Math.ceil(document.body.getBoundingClientRect().height);
      if (height !== last) {
        last = height;
        window.parent.postMessage({ type: "capteo:height", height: height }, "*");
      }
    }
    if (window.ResizeObserver) { new ResizeObserver(post).observe(document.body); }
    document.addEventListener("htmx:afterSettle", post);
    window.addEventListener("load", post);
    post();
  }

  // A button[data-copy="<id>"] copies that field's text and says so in its [data-copied] status.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
    if (!button) { return; }
    var field = document.getElementById(button.dataset.copy);
    var status = document.getElementById(button.dataset.copyStatus || "");
    if (!field) { return; }
    function done(ok) {
      if (status) { status.textContent = ok ? status.dataset.copied : status.dataset.failed; }
    }
    function fallback() {
      field.focus();
      field.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      done(ok);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(function () { done(true); }, fallback);
    } else {
      fallback();
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", reportHeight);
  } else {
    reportHeight();
  }
})();
// ---- end of embedding and copying --------------------------------------------------------------
