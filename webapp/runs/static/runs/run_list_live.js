// The run list, live: one websocket (/ws/runs/) brings a "runs.row" message whenever a run the viewer
// may see changes (status, step, key metrics); this updates that row in place. Rows not on the page
// (a run launched since it loaded, or filtered out) are left alone. Reconnects with back-off; refusals
// (4401, 4403) are final. Plain script: the page works without it.
(function () {
  "use strict";
  const table = document.querySelector("[data-run-list]");
  if (!table || !("WebSocket" in window)) return;
  const SPARK_MAX = 40;
  const STATUS = {
    succeeded: ["ok", "✓"], failed: ["err", "✗"], cancelled: ["", "■"], draft: ["info", "●"],
  };
  const url = new URL(table.dataset.wsUrl || "/ws/runs/", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  let attempt = 0;
  let stopped = false;

  function format(value, kind) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "—";
    return kind === "percent" ? `${Math.round(value * 100)}%` : value.toFixed(2);
  }

  function sparkPath(values, width, height) {
    const present = values.filter((v) => v !== null && Number.isFinite(v));
    if (!present.length) return "";
    const lo = Math.min(...present), hi = Math.max(...present), n = values.length;
    const x = (i) => (n === 1 ? width / 2 : 1 + (i / (n - 1)) * (width - 2));
    const y = (v) => (hi === lo ? height / 2 : 1 + (1 - (v - lo) / (hi - lo)) * (height - 2));
    let d = "", pen = false;
    values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) { pen = false; return; }
      d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    return d;
  }

  function updateSpark(cell, value) {
    let values = [];
    try { values = JSON.parse(cell.dataset.sparkline || "[]"); } catch { values = []; }
    values.push(value);
    values = values.slice(-SPARK_MAX);
    cell.dataset.sparkline = JSON.stringify(values);
    const path = cell.querySelector("svg path");
    if (path) {
      path.setAttribute("d", sparkPath(values, 96, 24));
      const present = values.filter((v) => v !== null);
      const fmt = (v) => String(Number(v.toPrecision(3)));
      cell.querySelector("svg").setAttribute("aria-label", `reward: ${fmt(present[0])} → ${fmt(present[present.length - 1])}`);
    }
  }

  function apply(row, m) {
    const status = row.querySelector('[data-cell="status"]');
    if (status && m.status_label) {
      const [tone, glyph] = STATUS[m.status] || ["info", "▶"];
      status.innerHTML = "";
      const badge = document.createElement("span");
      badge.className = `badge ${tone}`;
      badge.textContent = `${glyph} ${m.status_label}`;
      if (m.reason) badge.title = m.reason;
      status.append(badge);
    }
    const bar = row.querySelector('[data-cell="bar"]');
    if (bar && m.progress !== null && m.progress !== undefined) {
      bar.style.width = `${(m.progress * 100).toFixed(1)}%`;
      bar.parentElement.setAttribute("aria-valuenow", String(Math.round(m.progress * 100)));
    }
    const steps = row.querySelector('[data-cell="steps"]');
    if (steps) steps.textContent = `${m.steps_done} / ${m.total_steps}`;
    for (const [key, value] of Object.entries(m.metrics || {})) {
      const cell = row.querySelector(`[data-metric="${CSS.escape(key)}"]`);
      if (cell) cell.textContent = format(value, cell.dataset.format);
    }
    const spark = row.querySelector('[data-cell="spark"]');
    if (spark && m.step !== null && m.spark !== null && m.spark !== undefined) updateSpark(spark, m.spark);
    row.classList.remove("row-updated");
    void row.offsetWidth; // restart the highlight
    row.classList.add("row-updated");
  }

  function connect() {
    const socket = new WebSocket(url);
    socket.onopen = () => { attempt = 0; table.dataset.live = "true"; };
    socket.onmessage = (event) => {
      let m;
      try { m = JSON.parse(event.data); } catch { return; }
      if (m.type !== "runs.row") return;
      const row = table.querySelector(`[data-run-row="${Number(m.run)}"]`);
      if (row) apply(row, m);
    };
    socket.onclose = (event) => {
      table.dataset.live = "false";
      if (stopped || [4401, 4403, 4404].includes(event.code)) return;
      const ceiling = Math.min(30000, 500 * 2 ** Math.min(attempt, 30));
      attempt += 1;
      window.setTimeout(connect, ceiling / 2 + (ceiling / 2) * Math.random());
    };
  }
  connect();
  window.addEventListener("pagehide", () => { stopped = true; });
})();
