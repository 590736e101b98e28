// Draws one laid-out rollout tree as SVG: a row per path, forks leaving their parent's row at the
// tool boundary, tool results as ticks, decision points as markers, leaves coloured by reward.
// Leaves and decision points are real focus stops (Tab, arrows, Enter).
import { entropyScaleMax, rewardColour, type Theme } from "./colour";
import { type LaidLink, type LaidNode, layoutTree, type TreeLayout } from "./layout";
import type { TreeRecord } from "./record";

const SVG = "http://www.w3.org/2000/svg";
const ROW = 30;
const TOP = 26;
const LEFT = 78;
const RIGHT = 150;

export interface TreeViewEvents {
  selectPath(pathId: number): void;
  selectPoint(node: LaidNode): void;
}

function el<K extends keyof SVGElementTagNameMap>(name: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

const signed = (v: number, digits = 2) => `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(digits)}`;

export function decisionLabel(node: LaidNode): string {
  const d = node.data.decision;
  if (!d) return `Fork point of path ${node.data.pathId} at token ${node.x}`;
  const verdict = d.forked ? (d.children.length ? `forked to ${d.children.join(", ")}` : "fork wanted, budget full") : "no fork";
  return `Path ${node.data.pathId}, after tool ${d.tool_index}: ΔH ${signed(d.delta_h)}, branch probability ${d.score.toFixed(2)}, ${verdict}`;
}

export function leafLabel(node: LaidNode): string {
  const p = node.data.path!;
  const reward = p.reward === null ? "no reward" : `reward ${signed(p.reward)}`;
  const adv = p.advantage === null ? "" : `, advantage ${signed(p.advantage)}`;
  return `Path ${p.id} (${p.origin}${p.parent !== null ? ` of ${p.parent}` : ""}): ${reward}${adv}, ${p.tokens} tokens, ended by ${p.finish_reason ?? "?"}`;
}

export class TreeView {
  readonly element: SVGSVGElement;
  private layout: TreeLayout | null = null;
  private linkByTarget = new Map<string, LaidLink>();
  private leafNodes: SVGGElement[] = [];
  selected: number | null = null;

  constructor(private readonly events: TreeViewEvents) {
    this.element = el("svg", { class: "tree-svg", role: "group" });
    this.element.addEventListener("keydown", (e) => this.key(e));
  }

  draw(record: TreeRecord, theme: Theme, width: number): void {
    const layout = layoutTree(record);
    this.layout = layout;
    this.linkByTarget = new Map(layout.links.map((l) => [l.target.key, l]));
    const w = Math.max(520, width);
    const h = TOP + layout.rows * ROW + 8;
    const span = Math.max(layout.maxPosition, 1);
    const x = (pos: number) => LEFT + (pos / span) * (w - LEFT - RIGHT);
    const y = (row: number) => TOP + row * ROW + ROW / 2;
    const svg = this.element;
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("width", String(w));
    svg.setAttribute("height", String(h));
    svg.setAttribute("aria-label", `Rollout tree of prompt ${record.prompt_index}: ${record.paths.length} paths`);
    const hMax = entropyScaleMax(record.paths.flatMap((p) => p.entropies));

    // Axis: token positions.
    const axis = el("g", { class: "tree-axis", "aria-hidden": "true" });
    for (let i = 0; i <= 4; i++) {
      const pos = Math.round((span * i) / 4);
      axis.append(el("line", { x1: x(pos), x2: x(pos), y1: TOP - 6, y2: h - 4, class: "tree-gridline" }));
      const label = el("text", { x: x(pos), y: 12, class: "tree-axis-label", "text-anchor": "middle" });
      label.textContent = i === 0 ? "token 0" : String(pos);
      axis.append(label);
    }
    svg.append(axis);

    const links = el("g", { class: "tree-links" });
    for (const link of layout.links) {
      const sx = x(link.source.x);
      const sy = y(link.source.row);
      const tx = x(link.target.x);
      const ty = y(link.target.row);
      const d =
        sy === ty ? `M${sx},${sy}H${tx}` : `M${sx},${sy}V${ty - 8}Q${sx},${ty} ${sx + 8},${ty}H${Math.max(tx, sx + 8)}`;
      const warmth = link.span.meanEntropy === null ? 0 : Math.min(1, link.span.meanEntropy / hMax);
      const path = el("path", {
        d,
        class: `tree-link origin-${link.span.origin}`,
        "data-path": link.span.pathId,
        "data-target": link.target.key,
        style: `--warmth:${warmth.toFixed(2)}`,
      });
      const title = el("title", {});
      title.textContent = `path ${link.span.pathId}, tokens ${link.span.start}–${link.span.end}${link.span.meanEntropy === null ? "" : `, mean entropy ${link.span.meanEntropy.toFixed(2)} nats`}`;
      path.append(title);
      path.addEventListener("click", () => this.events.selectPath(link.span.pathId));
      links.append(path);
      for (const call of link.span.toolCalls) {
        const tick = el("rect", {
          x: x(call.result_start),
          y: ty - 4,
          width: Math.max(3, x(call.result_end) - x(call.result_start)),
          height: 8,
          rx: 2,
          class: call.error ? "tree-tool is-error" : "tree-tool",
        });
        const t = el("title", {});
        t.textContent = `${call.name} · ${call.latency_ms.toFixed(0)} ms${call.error ? ` · error: ${call.error}` : ""}`;
        tick.append(t);
        links.append(tick);
      }
    }
    svg.append(links);

    const nodes = el("g", { class: "tree-nodes" });
    this.leafNodes = [];
    const leaves = layout.nodes.filter((n) => n.data.kind === "leaf").sort((a, b) => a.row - b.row);
    const points = layout.nodes.filter((n) => n.data.kind !== "leaf");
    for (const node of points) {
      const cx = x(node.x);
      const cy = y(node.row);
      if (node.data.kind === "prompt") {
        const g = el("g", { class: "tree-prompt", "aria-hidden": "true" });
        g.append(el("rect", { x: 6, y: cy - 11, width: LEFT - 16, height: 22, rx: 11 }));
        const t = el("text", { x: (LEFT - 10) / 2 + 3, y: cy + 4, "text-anchor": "middle" });
        t.textContent = `prompt #${record.prompt_index}`;
        g.append(t);
        g.append(el("path", { d: `M${LEFT - 10},${cy}H${cx}`, class: "tree-link" }));
        nodes.append(g);
        continue;
      }
      const d = node.data.decision;
      const forked = d?.forked ?? true;
      const g = el("g", {
        class: `tree-point ${forked ? (d && !d.children.length ? "is-wanted" : "is-fork") : "is-pass"}`,
        tabindex: 0,
        role: "button",
        "aria-label": decisionLabel(node),
        "data-key": node.key,
      });
      const r = forked ? 6 : 3.5;
      g.append(
        forked
          ? el("path", { d: `M${cx},${cy - r}L${cx + r},${cy}L${cx},${cy + r}L${cx - r},${cy}Z` })
          : el("circle", { cx, cy, r }),
      );
      if (forked && d) {
        const label = el("text", { x: cx + 8, y: cy - 7, class: "tree-point-label" });
        label.textContent = `ΔH ${signed(d.delta_h)}`;
        g.append(label);
      }
      g.addEventListener("click", () => this.events.selectPoint(node));
      g.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          this.events.selectPoint(node);
        }
      });
      nodes.append(g);
    }
    for (const node of leaves) {
      const p = node.data.path!;
      const cx = x(node.x);
      const cy = y(node.row);
      const g = el("g", {
        class: `tree-leaf origin-${p.origin}`,
        tabindex: 0,
        role: "button",
        "aria-label": leafLabel(node),
        "aria-pressed": "false",
        "data-path": p.id,
      });
      const fill = rewardColour(p.reward, theme);
      g.append(el("rect", { x: cx - 4, y: cy - ROW / 2 + 2, width: w - cx + 2, height: ROW - 4, rx: 6, class: "tree-leaf-hit" }));
      g.append(
        p.origin === "supplement"
          ? el("rect", { x: cx - 6, y: cy - 6, width: 12, height: 12, rx: 2, fill, class: "tree-leaf-mark" })
          : el("circle", { cx, cy, r: 6.5, fill, class: "tree-leaf-mark" }),
      );
      const label = el("text", { x: cx + 12, y: cy + 4, class: "tree-leaf-label" });
      const reward = p.reward === null ? "r –" : `r ${signed(p.reward)}`;
      const adv = p.advantage === null ? "" : ` · A ${signed(p.advantage)}`;
      label.textContent = `#${p.id} ${reward}${adv}`;
      g.append(label);
      const open = () => this.events.selectPath(p.id);
      g.addEventListener("click", open);
      g.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          open();
        }
      });
      this.leafNodes.push(g);
      nodes.append(g);
    }
    svg.append(nodes);
    if (this.selected !== null) this.highlight(this.selected);
  }

  /** Emphasise the links from the prompt to this path's leaf (its shared prefix included). */
  highlight(pathId: number | null): void {
    this.selected = pathId;
    for (const p of this.element.querySelectorAll(".tree-link.is-selected")) p.classList.remove("is-selected");
    for (const g of this.leafNodes) g.setAttribute("aria-pressed", String(g.dataset.path === String(pathId)));
    if (pathId === null) return;
    let key: string | undefined = `leaf:${pathId}`;
    while (key) {
      const link = this.linkByTarget.get(key);
      if (!link) break;
      this.element.querySelector(`.tree-link[data-target="${CSS.escape(key)}"]`)?.classList.add("is-selected");
      key = link.source.key;
    }
  }

  focusPath(pathId: number): void {
    this.leafNodes.find((g) => g.dataset.path === String(pathId))?.focus();
  }

  get current(): TreeLayout | null {
    return this.layout;
  }

  private key(e: KeyboardEvent): void {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    const at = this.leafNodes.indexOf(document.activeElement as SVGGElement);
    if (at < 0) return;
    e.preventDefault();
    const next = this.leafNodes[Math.min(this.leafNodes.length - 1, Math.max(0, at + (e.key === "ArrowDown" ? 1 : -1)))];
    next.focus();
  }
}
