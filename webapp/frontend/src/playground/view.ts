// Draws one side of a playground session into its <section>: the state badge, the model's text as it grows
// (reasoning muted, the answer block stressed), tool calls and results set apart as in the path reader, and
// how it ended. Updates in place: streaming a chunk touches only the last text block.
import {
  type AnswerState,
  type Block,
  boxedParts,
  callBody,
  finalSummary,
  PHASE_LABELS,
  type Phase,
  textPieces,
} from "./answer";

function h<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

const BADGE: Record<Phase, string> = {
  idle: "",
  queued: "info",
  loading: "info is-busy",
  answering: "info is-busy",
  done: "ok",
  failed: "err",
};

function fillText(el: HTMLElement, text: string): void {
  el.replaceChildren();
  for (const piece of textPieces(text.replace(/^\s+/, ""))) {
    if (piece.kind === "plain") el.append(document.createTextNode(piece.text));
    else if (piece.kind === "think") el.append(h("span", "pg-think", piece.text));
    else {
      const answer = h("span", "pg-answer");
      for (const part of boxedParts(piece.text)) {
        answer.append(part.boxed ? h("span", "pg-boxed", part.text) : document.createTextNode(part.text));
      }
      el.append(answer);
    }
  }
}

function blockElement(block: Block): HTMLElement {
  if (block.kind === "text") {
    const el = h("div", "read-model pg-text");
    fillText(el, block.text);
    return el;
  }
  if (block.kind === "call") {
    const box = h("div", "read-call");
    box.append(h("span", "read-tag", `tool call ${block.index} · ${block.name}`));
    if (block.error) box.append(h("span", "badge err", `not a valid call: ${block.error}`));
    box.append(h("pre", "", callBody(block)));
    return box;
  }
  const box = h("div", `read-result${block.error ? " is-error" : ""}`);
  box.append(h("span", "read-tag", `result · ${block.name} · ${block.latency_ms.toFixed(0)} ms`));
  if (block.error) box.append(h("span", "badge err", `error: ${block.error}`));
  box.append(h("pre", "", block.output.trim() || "(no output)"));
  return box;
}

export class AnswerView {
  private readonly badge: HTMLElement | null;
  private readonly body: HTMLElement;
  private readonly blocksEl: HTMLElement;
  private readonly status: HTMLElement;
  private readonly end: HTMLElement;
  private rendered: { block: Block; el: HTMLElement }[] = [];

  constructor(root: HTMLElement) {
    this.badge = root.querySelector<HTMLElement>("[data-state]");
    this.body = root.querySelector<HTMLElement>("[data-body]") ?? root;
    this.status = h("p", "pg-status muted small");
    this.blocksEl = h("div", "path-body pg-blocks");
    this.end = h("div", "pg-end");
  }

  render(state: AnswerState): void {
    if (!this.body.contains(this.blocksEl)) this.body.replaceChildren(this.status, this.blocksEl, this.end);
    if (this.badge) {
      this.badge.textContent = PHASE_LABELS[state.phase];
      this.badge.className = `badge answer-state ${BADGE[state.phase]}`.trim();
    }
    const busy = state.phase === "loading" || state.phase === "answering" || state.phase === "queued";
    this.body.setAttribute("aria-busy", String(busy));
    this.status.textContent = this.statusLine(state);
    this.renderBlocks(state.blocks);
    this.blocksEl.classList.toggle("is-writing", state.phase === "answering");
    this.renderEnd(state);
  }

  private statusLine(state: AnswerState): string {
    if (state.phase === "idle") return "";
    if (state.phase === "queued") return "Waiting for a worker…";
    if (state.phase === "loading") return "Loading the model…";
    const load = state.loadS === null ? "" : state.cached ? "Already loaded" : `Loaded in ${state.loadS.toFixed(1)} s`;
    if (state.phase === "answering" && !state.blocks.length) return `${load} · reading the question…`;
    return load;
  }

  private renderBlocks(blocks: Block[]): void {
    const stale = blocks.length < this.rendered.length || this.rendered.some((r, i) => r.block.kind !== blocks[i].kind);
    if (stale) {
      this.blocksEl.replaceChildren();
      this.rendered = [];
    }
    blocks.forEach((block, i) => {
      const done = this.rendered[i];
      if (done && done.block === block) return;
      if (done && block.kind === "text") {
        fillText(done.el, block.text);
        done.block = block;
        return;
      }
      const el = blockElement(block);
      this.blocksEl.append(el);
      this.rendered[i] = { block, el };
    });
  }

  private renderEnd(state: AnswerState): void {
    this.end.replaceChildren();
    if (state.error) {
      const box = h("div", "pg-error");
      box.setAttribute("role", "alert");
      box.append(h("strong", "", state.error.code === "time_cap" ? "Stopped" : "No answer"), h("p", "", state.error.message));
      this.end.append(box);
      return;
    }
    if (!state.final) return;
    const box = h("div", `pg-final${state.final.answer ? "" : " is-missing"}`);
    box.append(h("span", "read-tag", "final answer"));
    if (state.final.answer) box.append(h("strong", "pg-final-answer", state.final.answer));
    else box.append(h("span", "", "none in the expected format (\\boxed{…})"));
    box.append(h("p", "muted small", finalSummary(state.final)));
    this.end.append(box);
  }
}
