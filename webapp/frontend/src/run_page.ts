// The live run page: charts, rollout explorer, status, log and checkpoints, fed by the page's
// embedded history and then by the run's websocket. Mounts into elements with data-* hooks:
//   [data-run-charts] [data-run-trees] [data-run-status] [data-run-log] [data-run-checkpoints] [data-run-alerts]

import { RunCharts } from "./charts/RunCharts";
import { pickTree, type RunPageConfig, readJsonConfig, socketUrl, treeUrl } from "./live/config";
import type { CheckpointData, LogData, MetricsData, PhaseData, StatusData } from "./live/contract";
import { HeadRefresher } from "./live/head";
import { RunSocket, type SocketFactory } from "./live/socket";
import { runAlerts } from "./data/alerts";
import { AlertsPane, CheckpointPane, LogPane, StatusPane } from "./panes/panes";
import { TreeExplorer } from "./tree/TreeExplorer";

export interface MountOptions {
  socketFactory?: SocketFactory;
  /** Do not open the websocket (the static demo). */
  offline?: boolean;
}

export interface RunPage {
  charts: RunCharts | null;
  trees: TreeExplorer | null;
  socket: RunSocket | null;
}

export function mountRunPage(doc: Document, config: RunPageConfig, options: MountOptions = {}): RunPage {
  const hook = (name: string) => doc.querySelector<HTMLElement>(`[data-run-${name}]`);
  const history = config.history ?? {};
  const chartsRoot = hook("charts");
  const treesRoot = hook("trees");
  const statusRoot = hook("status");
  const logRoot = hook("log");
  const checkpointsRoot = hook("checkpoints");

  const charts = chartsRoot ? new RunCharts(chartsRoot) : null;
  const trees = treesRoot
    ? new TreeExplorer(treesRoot, {
        toolNames: config.tool_names,
        fetchTree: config.tree_url
          ? (step, prompt) =>
              fetch(treeUrl(config.tree_url!, step, prompt), { credentials: "same-origin" })
                .then((r) => {
                  if (!r.ok) throw new Error(String(r.status));
                  return r.json();
                })
                .then((body) => pickTree(body, prompt))
          : undefined,
      })
    : null;
  let socket: RunSocket | null = null;
  const status = statusRoot ? new StatusPane(statusRoot, config.total_steps ?? null, () => socket?.retryNow()) : null;
  const log = logRoot ? new LogPane(logRoot) : null;
  const checkpoints = checkpointsRoot ? new CheckpointPane(checkpointsRoot) : null;
  const alertsRoot = hook("alerts");
  const alerts = alertsRoot ? new AlertsPane(alertsRoot) : null;
  let alertTimer: ReturnType<typeof setTimeout> | null = null;
  const checkAlerts = () => {
    if (!alerts || !charts || alertTimer !== null) return;
    alertTimer = setTimeout(() => {
      alertTimer = null;
      alerts.show(runAlerts(charts.store));
    }, 300);
  };

  charts?.load(history.metrics ?? []);
  charts?.flush();
  // For the page-load benchmark (docs/benchmarks.md): every chart has drawn its history.
  performance.mark("arpo:charts-drawn");
  if (alerts && charts) alerts.show(runAlerts(charts.store));
  for (const t of history.trees ?? []) trees?.add(t.step, t.data);
  trees?.selectFirst();
  for (const c of history.checkpoints ?? []) checkpoints?.add(c.step, c.data);
  for (const line of history.logs ?? []) log?.append(line);
  if (history.status) status?.setStatus(history.status);
  if (history.phase) status?.setPhase(history.phase);
  const lastStep = history.metrics?.at(-1)?.step;
  if (lastStep !== undefined) status?.step(lastStep, Date.now(), false);

  if (options.offline) return { charts, trees, socket };
  socket = new RunSocket({
    url: socketUrl(config.ws_url, doc.location?.href ?? "http://localhost/"),
    after: history.last_seq ?? 0,
    factory: options.socketFactory,
  });
  const head = config.head_url ? new HeadRefresher(doc, config.head_url) : null;
  let headStep = lastStep ?? 0;
  socket.on("run.metrics", (m) => {
    if (m.step === null || m.step === undefined) return;
    charts?.append(m.step, m.data as MetricsData);
    status?.step(m.step, Date.now(), socket?.info.live ?? false);
    checkAlerts();
    if (m.step > headStep) {
      headStep = m.step;
      head?.request();
    }
  });
  socket.on("run.eval", (m) => {
    if (m.step !== null && m.step !== undefined) charts?.append(m.step, m.data as MetricsData);
  });
  socket.on("run.rollout", (m) => trees?.add(m.step ?? null, m.data));
  socket.on("run.checkpoint", (m) => checkpoints?.add(m.step ?? 0, m.data as CheckpointData));
  socket.on("run.log", (m) => log?.append(m.data as unknown as LogData));
  socket.on("run.status", (m) => {
    const data = m.data as unknown as StatusData;
    status?.setStatus(data);
    if (data.status !== doc.querySelector<HTMLElement>("[data-run-head]")?.dataset.status) head?.request();
  });
  socket.on("run.phase", (m) => {
    status?.setPhase((m.data as unknown as PhaseData).phase);
    head?.request();
  });
  socket.onState((info) => status?.setConnection(info));
  socket.connect();
  doc.defaultView?.addEventListener("pagehide", () => socket?.close());
  return { charts, trees, socket };
}

const config = readJsonConfig<RunPageConfig>(document, "run-page-config");
if (config) {
  const page = mountRunPage(document, config, { offline: document.documentElement.dataset.offline === "true" });
  (window as unknown as { arpoRunPage?: RunPage }).arpoRunPage = page;
}
