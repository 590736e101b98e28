// "Try it": poll the trial's JSON endpoint until the worker has finished, then show the result.
(function () {
  "use strict";
  var box = document.getElementById("trial");
  if (!box || box.dataset.finished === "1") return;
  var field = function (name) { return box.querySelector('[data-field="' + name + '"]'); };
  var delay = 300;
  var started = Date.now();
  var stalledAfter = Number(box.dataset.stalledAfter || 20) * 1000;

  function show(trial) {
    var status = field("status");
    status.textContent = trial.status;
    var finished = trial.status === "done" || trial.status === "failed";
    status.className = "badge " + (!finished ? "warn" : trial.status === "done" && !trial.error ? "ok" : "err");
    field("latency").textContent = trial.latency_ms == null ? "" : Math.round(trial.latency_ms) + " ms";
    field("error").textContent = trial.error || "";
    if (finished) field("output").textContent = trial.output;
    // Still queued long after the page asked: most likely no worker is listening to the short queue.
    field("stalled").hidden = !(trial.status === "queued" && Date.now() - started > stalledAfter);
    return finished;
  }

  function poll() {
    fetch(box.dataset.api, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (trial) {
        if (!show(trial)) { delay = Math.min(delay * 1.5, 3000); setTimeout(poll, delay); }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, delay);
})();
