// personabot console: the only script. Refreshes server-rendered fragments in place
// (the server escapes everything it renders; this file never builds HTML from data).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-refresh]").forEach(function (box) {
    var every = parseInt(box.getAttribute("data-interval"), 10) || 5000;
    var refresh = function () {
      fetch(box.getAttribute("data-refresh"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.status === 401 || response.redirected) { window.location.reload(); return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) { if (html !== null) { box.innerHTML = html; box.dataset.refreshed = String(Date.now()); } })
        .catch(function () { /* offline for a moment: try again at the next tick */ });
    };
    window.setInterval(refresh, every);
  });
});
