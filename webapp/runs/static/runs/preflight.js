// The run page's "Check" panel: poll the check's JSON until the worker has finished, then show the
// server-rendered results by reloading (without JavaScript a <noscript> refresh does the same).
(function () {
  "use strict";
  var box = document.getElementById("preflight");
  if (!box || box.dataset.finished === "1" || !box.dataset.api) return;
  var status = box.querySelector('[data-field="status"]');
  var delay = 1000;

  function poll() {
    fetch(box.dataset.api, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (check) {
        if (status) status.textContent = check.status;
        if (check.status === "done" || check.status === "failed") {
          window.location.reload();
          return;
        }
        delay = Math.min(delay * 1.5, 5000);
        setTimeout(poll, delay);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, delay);
})();
