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
})();
