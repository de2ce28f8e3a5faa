// Live refresh without a full reload: every few seconds, fetch this page again and swap in
// each element marked data-live (by id). A region holding the keyboard focus is left alone,
// so refreshing never moves the focus; a hidden tab does not poll. Without this script every
// page still works: it only spares the reload.
(function () {
  "use strict";
  var EVERY_MS = 2000;
  var busy = false;

  function refresh() {
    if (busy || document.hidden || !document.querySelector("[data-live]")) return;
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Dashboard-Refresh": "1" } })
      .then(function (answer) {
        if (answer.redirected || !answer.ok) return null; // signed out, or gone: leave the page as it is
        return answer.text();
      })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (old) {
          var replacement = fresh.getElementById(old.id);
          if (!replacement || old.contains(document.activeElement)) return;
          if (old.innerHTML !== replacement.innerHTML) old.innerHTML = replacement.innerHTML;
        });
        document.documentElement.dataset.refreshed = String(Date.now());
      })
      .catch(function () { /* offline for a moment: the next tick tries again */ })
      .finally(function () { busy = false; });
  }

  window.setInterval(refresh, EVERY_MS);
})();
