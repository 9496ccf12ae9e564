// Capteo's embed helper, loaded by a business's own website beside its iframe:
//   <iframe src="https://capteo.example/fr/f/plomberie?embed=1" style="width:100%;height:900px;border:0"></iframe>
//   <script src="https://capteo.example/static/js/embed.js" async></script>
// The embedded form posts its height (capteo.js); this sizes the iframe to it, so the form
// never scrolls inside a small box. Only messages from the Capteo server this script came
// from are read, and only a number is taken from them.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) { return; }
  var origin = new URL(script.src, window.location.href).origin;

  window.addEventListener("message", function (event) {
    if (event.origin !== origin) { return; }
    var data = event.data;
    if (!data || data.type !== "capteo:height" || typeof data.height !== "number" || !isFinite(data.height)) {
      return;
    }
    var height = Math.max(120, Math.min(Math.ceil(data.height), 20000));
    var frames = document.getElementsByTagName("iframe");
    for (var i = 0; i < frames.length; i++) {
      if (frames[i].contentWindow === event.source) {
        frames[i].style.height = height + "px";
      }
    }
  });
})();
