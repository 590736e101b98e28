// Writes dev/demo.html (and dev/compare.html): the run page and compare page mounted on fixture data
// (real rollout trees from src/fixtures/, plausible synthetic metrics), for looking at the
// front end without Django. Not served by Django; generated files are ignored by git.
//   npm run build && node dev/make_demo.mjs [--steps 2000] [--theme dark]
//   python3 -m http.server -d ../.. 8765   →  http://127.0.0.1:8765/frontend/dev/demo.html
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";

const here = import.meta.dirname;
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const steps = Number(arg("steps", "300"));

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function history(n, seed, flavour) {
  const r = rng(seed);
  const noise = (s) => (r() - 0.5) * 2 * s;
  const points = [];
  for (let step = 1; step <= n; step++) {
    const t = step / n;
    const learn = 1 - Math.exp(-4 * t) * (flavour === "grpo" ? 1.15 : 1);
    const arpo = flavour === "arpo";
    const values = {
      "reward/mean": -0.55 + 1.0 * learn + noise(0.12),
      "reward/std": 0.5 + noise(0.05),
      accuracy: Math.max(0, 0.12 + 0.45 * learn + noise(0.06)),
      "format/ok_frac": Math.min(1, 0.45 + 0.5 * learn + noise(0.04)),
      "groups/degenerate_frac": Math.max(0, 0.35 - 0.2 * learn + noise(0.05)),
      "entropy/token_mean": 1.25 - 0.35 * t + noise(0.05),
      "entropy/initial_mean": 0.34 - 0.06 * t + noise(0.02),
      "entropy/after_tool_mean": 0.56 - 0.12 * t + noise(0.03),
      "branch/forks": arpo ? Math.round(5 - 2 * t + noise(1.5)) : 0,
      "branch/fork_rate": arpo ? Math.max(0, 0.42 - 0.15 * t + noise(0.06)) : 0,
      "branch/supplements": arpo ? Math.max(0, Math.round(1.5 + noise(1.5))) : 0,
      "tools/calls_per_traj": 1.4 + (arpo ? 0.9 : 0.6) * learn + noise(0.15),
      "tools/error_rate": Math.max(0, 0.06 - 0.03 * t + noise(0.02)),
      "tools/limit_hits": Math.max(0, Math.round(noise(1.2))),
      "tools/latency_ms_p50": 38 * Math.exp(noise(0.35)) + (step % 97 === 0 ? 400 : 0),
      "response/len_mean": 310 + 110 * learn + noise(18),
      "response/clip_frac": Math.max(0, 0.03 - 0.02 * t + noise(0.01)),
      "loss/policy": noise(0.02) - 0.005,
      "loss/kl": 1e-4 * Math.exp(3.6 * t) * Math.exp(noise(0.3)),
      "clip/frac": Math.max(0, 0.003 + noise(0.002)),
      "grad/norm": 0.45 * Math.exp(noise(0.5)) * (step % 61 === 0 ? 6 : 1),
      lr: 1e-6 * Math.min(1, step / 20),
      "time/rollout_s": 24 + noise(4),
      "time/reward_s": 0.8 + noise(0.2),
      "time/update_s": 9 + noise(1),
      "time/sync_s": 1.6 + noise(0.3),
      "throughput/rollout_tok_s": 1800 + noise(200),
      "throughput/train_tok_s": 5200 + noise(400),
    };
    values["entropy/delta_mean"] = values["entropy/after_tool_mean"] - values["entropy/initial_mean"];
    values["tools/calls_total"] = Math.round(values["tools/calls_per_traj"] * 128);
    if (step % 25 === 0 || step === 1) {
      values["eval/accuracy"] = Math.max(0, 0.1 + 0.48 * learn + noise(0.03));
      values["eval/format_ok"] = Math.min(1, 0.5 + 0.47 * learn + noise(0.02));
      values["eval/reward_mean"] = -0.5 + 1.05 * learn + noise(0.05);
      values["eval/tool_calls_per_traj"] = 1.3 + 0.9 * learn + noise(0.1);
    }
    points.push({ step, values });
  }
  return points;
}

const fixture = JSON.parse(readFileSync(resolve(here, "../src/fixtures/rollout_trees.json"), "utf8"));
const trees = fixture.trees.map((t, i) => ({ step: steps - Math.floor(i / 2) * 10, data: t.data }));
const metrics = history(steps, 7, "arpo");
const theme = arg("theme", "");
const config = {
  run_id: 7,
  ws_url: "/ws/runs/7/",
  total_steps: Math.round(steps * 1.25),
  tool_names: ["search", "python"],
  history: {
    last_seq: steps * 3,
    status: { status: "running", compute_s: steps * 36, queue_position: null },
    phase: "training",
    metrics,
    trees,
    checkpoints: [
      { step: Math.round(steps / 2), data: { size_bytes: 283_000_000, metrics: { "eval/accuracy": 0.41 }, download_url: "#" } },
      { step: steps, data: { size_bytes: 283_000_000, metrics: { "eval/accuracy": 0.55 }, download_url: "#" } },
    ],
    logs: [
      { line: "loading var/models/smollm2-135m-demo-sft …" },
      { line: "SFT on 64 demonstrations: 2 epochs" },
      { line: "step 1: reward -0.52 acc 0.13 tools/traj 1.4" },
      { line: "tool python: timed out after 10 s (path 3)", level: "warning" },
      { line: `step ${steps}: reward 0.44 acc 0.56 tools/traj 2.3` },
    ],
  },
};
const json = (v) => JSON.stringify(v).replace(/</g, "\\u003c");
const page = (title, body, script, data, id) => `<!doctype html>
<html lang="en"${theme ? ` data-theme="${theme}"` : ""} data-offline="true">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${title} · ARPO Studio (demo)</title>
  <link rel="stylesheet" href="../../core/static/core/app.css">
  <link rel="stylesheet" href="../../core/static/dist/dashboard.css">
</head>
<body>
  <header class="topbar"><a class="brand" href="#"><span class="brand-mark" aria-hidden="true">◆</span> ARPO Studio</a>
    <nav class="mainnav" aria-label="Main"><a href="#">Datasets</a><a href="#">Tools</a><a href="#" aria-current="page">Runs</a></nav></header>
  <main id="main" class="container wide">${body}</main>
  <script type="application/json" id="${id}">${json(data)}</script>
  <script type="module" src="../../core/static/dist/${script}.js"></script>
</body>
</html>
`;
const runBody = `
    <div class="page-head"><div><p class="muted small">Runs / demo-arpo</p><h1>ARPO on the demo world <span class="badge info">ARPO paper preset</span></h1>
      <p class="muted">SmolLM2-135M-Instruct · M = 8, N = 4 · search + python</p></div>
      <div class="actions"><a class="button secondary" href="compare.html">Compare with GRPO</a><button class="danger" type="button">Cancel</button></div></div>
    <nav class="run-tabs" aria-label="Run sections"><a href="#charts" aria-current="page">Charts</a><a href="#trees">Rollout trees</a><a href="#log">Log</a></nav>
    <div class="run-layout">
      <div>
        <div data-run-alerts hidden></div>
        <section id="charts" aria-label="Charts"><div data-run-charts></div></section>
        <section id="trees" class="panel" style="margin-top:24px"><h2>Rollout trees</h2><div data-run-trees></div></section>
      </div>
      <aside>
        <section class="panel" aria-labelledby="status-h"><h2 id="status-h" class="visually-hidden">Status</h2><div data-run-status></div></section>
        <section class="panel" aria-labelledby="ckpt-h"><h3 id="ckpt-h">Checkpoints</h3><div data-run-checkpoints></div></section>
        <section class="panel" id="log" aria-labelledby="log-h"><h3 id="log-h">Log</h3><div data-run-log></div></section>
      </aside>
    </div>`;
writeFileSync(resolve(here, "demo.html"), page("Run demo-arpo", runBody, "run_page", config, "run-page-config"));

const compareBody = `
    <div class="page-head"><div><h1>Compare runs</h1><p class="muted">ARPO and its GRPO twin on the demo world</p></div></div>
    <section class="panel"><div data-compare-table></div></section>
    <div data-compare-charts style="margin-top:20px"></div>`;
const runs = [
  { id: 7, label: "ARPO", metrics: history(steps, 7, "arpo") },
  { id: 8, label: "GRPO", metrics: history(steps, 8, "grpo") },
];
writeFileSync(resolve(here, "compare.html"), page("Compare", compareBody, "compare", { runs }, "compare-config"));
console.log(`wrote dev/demo.html (${steps} steps, ${trees.length} trees) and dev/compare.html`);
