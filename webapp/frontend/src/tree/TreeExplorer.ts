// The rollout explorer: the trees received so far (filter, order, pick one), the picked tree drawn,
// the facts of a picked fork point, and the picked path to read. Live trees are added as they come.
import { currentTheme, onThemeChange } from "../charts/theme";
import type { Theme } from "./colour";
import {
  filterTrees,
  NO_FILTER,
  orderTrees,
  type Outcome,
  summarise,
  type TreeFilter,
  type TreeOrder,
  treeKey,
  type TreeSummary,
} from "./filters";
import type { LaidNode } from "./layout";
import { renderPath } from "./PathReader";
import { hasPaths, normaliseTree, type TreeRecord } from "./record";
import { TreeView } from "./TreeView";

export interface TreeExplorerOptions {
  /** Fetch a whole tree a replay only summarised (GET the run's tree endpoint). */
  fetchTree?: (step: number | null, promptIndex: number) => Promise<unknown>;
  toolNames?: string[];
  /** Most trees kept in memory; the oldest steps go first. */
  limit?: number;
}

interface Entry {
  summary: TreeSummary;
  record: TreeRecord | null;
}

const LIST_LIMIT = 60;

export class TreeExplorer {
  private entries = new Map<string, Entry>();
  private filter: TreeFilter = { ...NO_FILTER };
  private order: TreeOrder = "newest";
  private selectedKey: string | null = null;
  private selectedPath: number | null = null;
  private theme: Theme = currentTheme();
  private readonly view: TreeView;
  private readonly list: HTMLElement;
  private readonly count: HTMLElement;
  private readonly canvas: HTMLElement;
  private readonly heading: HTMLElement;
  private readonly point: HTMLElement;
  private readonly reader: HTMLElement;

  constructor(
    root: HTMLElement,
    private readonly options: TreeExplorerOptions = {},
  ) {
    root.classList.add("tree-explorer");
    root.innerHTML = `
      <div class="tree-side">
        <form class="tree-filters" aria-label="Filter rollout trees">
          <label>Outcome
            <select data-outcome>
              <option value="all">All groups</option>
              <option value="mixed">Rewards differ (learning signal)</option>
              <option value="degenerate">All rewards equal</option>
              <option value="solved">Some path correct</option>
              <option value="unsolved">No path correct</option>
            </select>
          </label>
          <label>Prompt <input type="search" data-prompt placeholder="#3 or words"></label>
          <label class="check"><input type="checkbox" data-failure> Only with tool errors</label>
          <label>Order
            <select data-order>
              <option value="newest">Newest step first</option>
              <option value="delta-h">Largest ΔH first</option>
              <option value="reward-low">Lowest reward first</option>
              <option value="reward-high">Highest reward first</option>
            </select>
          </label>
        </form>
        <p class="muted small tree-count" aria-live="polite"></p>
        <ul class="tree-list" aria-label="Rollout trees"></ul>
      </div>
      <div class="tree-main">
        <div class="tree-heading"></div>
        <div class="tree-canvas"></div>
        <div class="tree-legend muted small" aria-hidden="true">
          <span><i class="lg-fork"></i> fork (ΔH after the tool result)</span>
          <span><i class="lg-pass"></i> no fork</span>
          <span><i class="lg-tool"></i> tool result</span>
          <span><i class="lg-err"></i> tool error</span>
          <span><i class="lg-leaf"></i> path end, coloured by reward</span>
          <span><i class="lg-supp"></i> supplement</span>
        </div>
        <div class="tree-point-facts" aria-live="polite"></div>
        <div class="tree-reader"></div>
      </div>`;
    this.list = root.querySelector(".tree-list")!;
    this.count = root.querySelector(".tree-count")!;
    this.canvas = root.querySelector(".tree-canvas")!;
    this.heading = root.querySelector(".tree-heading")!;
    this.point = root.querySelector(".tree-point-facts")!;
    this.reader = root.querySelector(".tree-reader")!;
    this.view = new TreeView({
      selectPath: (id) => this.selectPath(id),
      selectPoint: (node) => this.showPoint(node),
    });
    this.canvas.append(this.view.element);

    const form = root.querySelector("form")!;
    form.addEventListener("submit", (e) => e.preventDefault());
    form.addEventListener("input", () => {
      this.filter = {
        outcome: form.querySelector<HTMLSelectElement>("[data-outcome]")!.value as Outcome,
        prompt: form.querySelector<HTMLInputElement>("[data-prompt]")!.value,
        toolFailure: form.querySelector<HTMLInputElement>("[data-failure]")!.checked,
      };
      this.order = form.querySelector<HTMLSelectElement>("[data-order]")!.value as TreeOrder;
      this.renderList();
    });
    onThemeChange((theme) => {
      this.theme = theme;
      this.renderSelected();
    });
    if (typeof ResizeObserver !== "undefined") {
      let width = 0;
      new ResizeObserver(() => {
        if (Math.abs(this.canvas.clientWidth - width) > 8) {
          width = this.canvas.clientWidth;
          this.renderTree();
        }
      }).observe(this.canvas);
    }
    this.renderList();
    this.renderSelected();
  }

  /** A run.rollout payload (whole tree or replay summary) for `step`. */
  add(step: number | null, data: unknown): void {
    const full = hasPaths(data);
    const record = normaliseTree(data, { step });
    const key = treeKey(step, record.prompt_index);
    this.entries.set(key, { summary: summarise(record), record: full ? record : null });
    this.trim();
    this.renderList();
    if (this.selectedKey === null) this.select(key);
    else if (this.selectedKey === key) this.renderSelected();
  }

  /** Open the first tree of the list as filtered and ordered now (after the history has loaded). */
  selectFirst(): void {
    const all = [...this.entries.values()].map((e) => e.summary);
    const first = orderTrees(filterTrees(all, this.filter), this.order)[0];
    if (first && first.key !== this.selectedKey) this.select(first.key);
  }

  select(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.selectedKey = key;
    this.selectedPath = null;
    this.point.replaceChildren();
    this.renderList();
    if (!entry.record && this.options.fetchTree) {
      this.heading.textContent = "Loading the tree …";
      this.options.fetchTree(entry.summary.step, entry.summary.prompt_index).then(
        (data) => {
          const record = normaliseTree(data, { step: entry.summary.step });
          entry.record = record;
          entry.summary = summarise(record);
          if (this.selectedKey === key) this.renderSelected();
        },
        () => {
          if (this.selectedKey === key) this.heading.textContent = "This tree could not be loaded. Try again later.";
        },
      );
      return;
    }
    this.renderSelected();
    if (!entry.record) this.heading.textContent = "Only a summary of this tree reached the page.";
  }

  private trim(): void {
    const limit = this.options.limit ?? 300;
    if (this.entries.size <= limit) return;
    const oldest = orderTrees([...this.entries.values()].map((e) => e.summary), "newest").slice(limit);
    for (const s of oldest) if (s.key !== this.selectedKey) this.entries.delete(s.key);
  }

  private selectPath(id: number): void {
    this.selectedPath = id;
    this.view.highlight(id);
    this.renderReader();
  }

  private renderList(): void {
    const all = [...this.entries.values()].map((e) => e.summary);
    const shown = orderTrees(filterTrees(all, this.filter), this.order);
    this.count.textContent = all.length
      ? `${shown.length} of ${all.length} trees${shown.length > LIST_LIMIT ? ` (first ${LIST_LIMIT} listed)` : ""}`
      : "";
    this.list.replaceChildren();
    if (!all.length) {
      this.list.append(Object.assign(document.createElement("li"), { className: "empty-state small", textContent: "Rollout trees appear here once the first step has rolled out." }));
      return;
    }
    if (!shown.length) {
      this.list.append(Object.assign(document.createElement("li"), { className: "muted small", textContent: "No tree matches these filters." }));
      return;
    }
    for (const s of shown.slice(0, LIST_LIMIT)) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "tree-item";
      if (s.key === this.selectedKey) button.setAttribute("aria-current", "true");
      const title = document.createElement("span");
      title.className = "tree-item-title";
      title.textContent = `Step ${s.step ?? "–"} · prompt #${s.prompt_index}`;
      const q = document.createElement("span");
      q.className = "tree-item-question";
      q.textContent = s.question || "(question not recorded)";
      const stats = document.createElement("span");
      stats.className = "tree-item-stats";
      const parts = [`reward ${s.reward_mean === null ? "–" : s.reward_mean.toFixed(2)}`];
      if (s.paths) parts.push(`${s.forks} fork${s.forks === 1 ? "" : "s"}`);
      if (s.maxDeltaH !== null) parts.push(`ΔH max ${s.maxDeltaH >= 0 ? "+" : "−"}${Math.abs(s.maxDeltaH).toFixed(2)}`);
      if (s.toolErrors) parts.push(`${s.toolErrors} tool error${s.toolErrors === 1 ? "" : "s"}`);
      if (s.degenerate) parts.push("all equal");
      stats.textContent = parts.join(" · ");
      button.append(title, q, stats);
      button.addEventListener("click", () => this.select(s.key));
      li.append(button);
      this.list.append(li);
    }
  }

  private get selected(): TreeRecord | null {
    return (this.selectedKey && this.entries.get(this.selectedKey)?.record) || null;
  }

  private renderSelected(): void {
    const record = this.selected;
    this.heading.replaceChildren();
    if (!record) {
      this.view.element.replaceChildren();
      this.reader.replaceChildren();
      if (!this.entries.size) this.heading.innerHTML = `<p class="muted">No rollout tree yet.</p>`;
      return;
    }
    const h = document.createElement("h3");
    h.textContent = `Step ${record.step ?? "–"} · prompt #${record.prompt_index}`;
    const q = document.createElement("p");
    q.className = "tree-question";
    q.textContent = record.question;
    const meta = document.createElement("p");
    meta.className = "muted small";
    meta.textContent =
      `N = ${record.initial_samples} initial, M = ${record.budget}, ${record.paths.length} paths, ` +
      `${record.supplements} supplement${record.supplements === 1 ? "" : "s"} · entropy ${record.entropy_estimator}` +
      (record.answers.length ? ` · answer ${record.answers.join(", ")}` : "") +
      (record.truncated ? " · thinned to fit the size cap" : "");
    this.heading.append(h, q, meta);
    this.renderTree();
    if (this.selectedPath === null) {
      const best = [...record.paths].sort((a, b) => (b.reward ?? -Infinity) - (a.reward ?? -Infinity))[0];
      this.selectedPath = best?.id ?? null;
    }
    this.view.highlight(this.selectedPath);
    this.renderReader();
  }

  private renderTree(): void {
    const record = this.selected;
    if (record) this.view.draw(record, this.theme, this.canvas.clientWidth || 720);
  }

  private renderReader(): void {
    const record = this.selected;
    this.reader.replaceChildren();
    const path = record?.paths.find((p) => p.id === this.selectedPath);
    if (!record || !path) return;
    this.reader.append(renderPath(record, path, this.theme, this.options.toolNames));
  }

  private showPoint(node: LaidNode): void {
    const d = node.data.decision;
    this.point.replaceChildren();
    if (!d) return;
    const box = document.createElement("div");
    box.className = "point-facts";
    const rows: [string, string][] = [
      ["Path", `#${node.data.pathId}, after tool result ${d.tool_index} (token ${d.boundary})`],
      ["H_initial", d.h_initial === null ? "–" : d.h_initial.toFixed(3)],
      ["H_t", d.h_t.toFixed(3)],
      ["ΔH", `${d.delta_h >= 0 ? "+" : "−"}${Math.abs(d.delta_h).toFixed(3)}`],
      ["Branch probability", d.score.toFixed(3) + (d.draw === null ? "" : ` (draw ${d.draw.toFixed(3)})`)],
      ["Decision", d.forked ? (d.children.length ? `fork → path ${d.children.map((c) => `#${c}`).join(", ")}` : "fork wanted, budget full") : "no fork"],
    ];
    const dl = document.createElement("dl");
    for (const [k, v] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      dl.append(dt, dd);
    }
    box.append(dl);
    this.point.append(box);
    if (node.data.pathId !== null) this.selectPath(d.children[0] ?? node.data.pathId);
  }
}
