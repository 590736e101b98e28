// The run page's small live panes: status (with connection state), log, checkpoints.
import type { CheckpointData, LogData, StatusData } from "../live/contract";
import type { ConnectionInfo } from "../live/socket";
import { etaSeconds, formatBytes, formatDuration, progressOf, statusLook } from "./format";

export class StatusPane {
  private status: StatusData = { status: "" };
  private phase = "";
  private stepTimes: { step: number; at: number }[] = [];
  /** Seconds per step implied by the server's last ETA: the ETA follows new steps until live timing has two. */
  private etaPerStep: number | null = null;
  private connection: ConnectionInfo = { state: "idle", live: false, attempt: 0 };

  constructor(
    private readonly root: HTMLElement,
    private readonly totalSteps: number | null,
    private readonly onRetry: () => void = () => {},
  ) {
    root.classList.add("status-pane");
    this.render();
  }

  /** The server's word on the run: a whole snapshot (on connect, at each status change) or only its status.
   * What a snapshot says of the moment (queue position, ETA) does not outlive the state it was true in. */
  setStatus(data: StatusData): void {
    const done = Math.max(this.status.steps_done ?? 0, data.steps_done ?? 0);
    this.status = { ...this.status, ...data, steps_done: done };
    if (this.status.status !== "queued") this.status.queue_position = null;
    if (data.eta_s !== undefined) {
      const left = this.totalSteps ? this.totalSteps - done : 0;
      this.etaPerStep = data.eta_s !== null && left > 0 ? data.eta_s / left : null;
    }
    this.render();
  }

  setPhase(phase: string): void {
    this.phase = phase;
    this.render();
  }

  /** A step's metrics arrived at `at` (ms): feeds progress and the ETA. */
  step(step: number, at: number, live: boolean): void {
    this.status.steps_done = Math.max(this.status.steps_done ?? 0, step);
    if (live) this.stepTimes.push({ step, at: at / 1000 });
    if (this.stepTimes.length > 50) this.stepTimes.shift();
    this.render();
  }

  setConnection(info: ConnectionInfo): void {
    this.connection = info;
    this.render();
  }

  private render(): void {
    const look = statusLook(this.status.status);
    const done = this.status.steps_done ?? 0;
    const fraction = progressOf(done, this.totalSteps) ?? this.status.progress ?? null;
    const live = this.totalSteps ? etaSeconds(this.stepTimes, this.totalSteps) : null;
    const fromSnapshot = this.etaPerStep !== null && this.totalSteps ? this.etaPerStep * (this.totalSteps - done) : null;
    const eta = live ?? fromSnapshot ?? this.status.eta_s ?? null;
    const c = this.connection;
    const conn =
      c.state === "open"
        ? c.live
          ? ["ok", "● Live"]
          : ["info", "◔ Catching up …"]
        : c.state === "waiting"
          ? ["warn", `↻ Reconnecting in ${Math.ceil((c.retryInMs ?? 0) / 1000)} s`]
          : c.state === "refused"
            ? ["err", "✗ Not allowed"]
            : c.state === "connecting"
              ? ["info", "◌ Connecting …"]
              : ["", "○ Offline"];
    this.root.innerHTML = `
      <div class="status-line">
        <span class="badge ${look.tone} status-badge"><span aria-hidden="true">${look.glyph}</span> <span data-s="label"></span></span>
        <span class="muted small" data-s="phase"></span>
        <span class="badge ${conn[0]} conn-badge" role="status" data-s="conn"></span>
        ${c.state === "waiting" ? `<button type="button" class="secondary small" data-retry>Reconnect now</button>` : ""}
      </div>
      ${c.state === "refused" ? `<p class="form-errors" data-s="refusal"></p>` : ""}
      <div class="progress" role="progressbar" aria-label="Training progress" aria-valuemin="0" aria-valuemax="100"
           ${fraction === null ? "" : `aria-valuenow="${Math.round(fraction * 100)}"`}>
        <span style="width:${fraction === null ? 0 : (fraction * 100).toFixed(1)}%"></span>
      </div>
      <div class="stats">
        <div class="stat"><span class="meta">Step</span><strong data-s="step"></strong></div>
        <div class="stat"><span class="meta">ETA</span><strong data-s="eta"></strong></div>
        ${this.status.queue_position ? `<div class="stat"><span class="meta">Queue</span><strong data-s="queue"></strong></div>` : ""}
        <div class="stat"><span class="meta">Compute</span><strong data-s="compute"></strong></div>
      </div>
      ${this.status.reason ? `<p class="status-reason${this.status.status === "failed" ? " is-error" : ""}" data-s="reason"></p>` : ""}`;
    const set = (key: string, text: string) => {
      const node = this.root.querySelector(`[data-s="${key}"]`);
      if (node) node.textContent = text;
    };
    set("label", look.label);
    set("phase", this.phase);
    set("conn", conn[1]);
    set("refusal", c.message ?? "");
    set("step", this.totalSteps ? `${done} / ${this.totalSteps}` : String(done));
    set("eta", ["succeeded", "failed", "cancelled"].includes(this.status.status) ? "done" : formatDuration(eta));
    set("queue", `#${this.status.queue_position}`);
    set("compute", formatDuration(this.status.compute_s));
    set("reason", this.status.reason ?? "");
    this.root.querySelector("[data-retry]")?.addEventListener("click", this.onRetry);
  }
}

export class LogPane {
  private readonly pre: HTMLElement;
  private lines = 0;

  constructor(
    root: HTMLElement,
    private readonly limit = 2000,
  ) {
    root.classList.add("log-pane");
    this.pre = document.createElement("pre");
    this.pre.className = "log-lines";
    this.pre.tabIndex = 0;
    this.pre.setAttribute("aria-label", "Run log");
    this.pre.textContent = "";
    root.append(this.pre);
  }

  append(data: LogData): void {
    const atBottom = this.pre.scrollHeight - this.pre.scrollTop - this.pre.clientHeight < 24;
    const line = document.createElement("span");
    line.className = `log-line level-${data.level ?? "info"}`;
    line.textContent = data.line.endsWith("\n") ? data.line : `${data.line}\n`;
    this.pre.append(line);
    this.lines += 1;
    if (this.lines > this.limit) {
      this.pre.firstChild?.remove();
      this.lines -= 1;
    }
    if (atBottom) this.pre.scrollTop = this.pre.scrollHeight;
  }
}

export class CheckpointPane {
  private readonly list: HTMLElement;
  private readonly rows = new Map<number, HTMLElement>();

  constructor(root: HTMLElement) {
    root.classList.add("checkpoint-pane");
    this.list = document.createElement("ul");
    this.list.className = "checkpoint-list";
    const empty = document.createElement("li");
    empty.className = "muted small";
    empty.dataset.empty = "";
    empty.textContent = "No checkpoint saved yet.";
    this.list.append(empty);
    root.append(this.list);
  }

  add(step: number, data: CheckpointData): void {
    this.list.querySelector("[data-empty]")?.remove();
    const li = this.rows.get(step) ?? document.createElement("li");
    li.replaceChildren();
    const name = document.createElement("strong");
    name.textContent = `Step ${step}`;
    const meta = document.createElement("span");
    meta.className = "muted small";
    const acc = data.metrics?.["eval/accuracy"] ?? data.metrics?.accuracy;
    meta.textContent = [formatBytes(data.size_bytes), acc === undefined ? "" : `accuracy ${(acc * 100).toFixed(1)}%`]
      .filter(Boolean)
      .join(" · ");
    li.append(name, meta);
    if (data.try_url) {
      const a = document.createElement("a");
      a.className = "button small";
      a.href = data.try_url;
      a.textContent = "Try it";
      a.setAttribute("aria-label", `Try the agent of step ${step}`);
      li.append(a);
    }
    if (data.download_url) {
      const a = document.createElement("a");
      a.className = "button small secondary";
      a.href = data.download_url;
      a.textContent = "Download";
      a.setAttribute("aria-label", `Download the checkpoint of step ${step}`);
      li.append(a);
    }
    if (!this.rows.has(step)) {
      this.rows.set(step, li);
      const after = [...this.rows.keys()].filter((s) => s > step).sort((a, b) => a - b)[0];
      // Newest first.
      const before = after === undefined ? this.list.firstChild : this.rows.get(after)!.nextSibling;
      this.list.insertBefore(li, before);
    }
  }
}

/** What the run's health checks say (data/alerts.ts); nothing shown while all is well. */
export class AlertsPane {
  private shown = "";

  constructor(private readonly root: HTMLElement) {
    root.classList.add("alerts-pane");
    root.setAttribute("aria-live", "polite");
  }

  show(alerts: ReadonlyArray<{ id: string; severity: "warn" | "err"; title: string; advice: string }>): void {
    const key = alerts.map((a) => `${a.id}:${a.title}`).join("|");
    if (key === this.shown) return;
    this.shown = key;
    this.root.replaceChildren();
    this.root.hidden = alerts.length === 0;
    for (const a of alerts) {
      const box = document.createElement("div");
      box.className = `run-alert ${a.severity}`;
      const title = document.createElement("strong");
      title.textContent = `${a.severity === "err" ? "✗" : "⚠"} ${a.title}`;
      const advice = document.createElement("p");
      advice.textContent = a.advice;
      box.append(title, advice);
      this.root.append(box);
    }
  }
}
