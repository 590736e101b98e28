// One path to read: its facts, then model text (tinted by token entropy), tool calls and tool
// results set apart; the prefix shared with its parent folded away.
import { entropyScaleMax, entropyTint, type Theme } from "./colour";
import { type Block, readPath } from "./reading";
import type { TreePath, TreeRecord } from "./record";

function h<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

const signed = (v: number | null, digits = 2) =>
  v === null ? "–" : `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(digits)}`;

function fact(label: string, value: string): HTMLElement {
  const div = h("div", "stat");
  div.append(h("span", "meta", label), h("strong", "", value));
  return div;
}

function blockElement(block: Exclude<Block, { kind: "fork" }>, hMax: number, theme: Theme): HTMLElement {
  if (block.kind === "model") {
    const p = h("div", "read-model");
    // The blank lines around a tool result are the format's, not something to read.
    const pieces = block.pieces.map((piece, i, all) => ({
      ...piece,
      text: i === 0 ? piece.text.replace(/^\s+/, "") : i === all.length - 1 ? piece.text.replace(/\s+$/, "") : piece.text,
    }));
    for (const piece of pieces) {
      const tint = entropyTint(piece.entropy, hMax, theme);
      if (!tint) {
        p.append(document.createTextNode(piece.text));
        continue;
      }
      const span = h("span", "tok", piece.text);
      span.style.background = tint;
      span.title = `entropy ${piece.entropy!.toFixed(2)} nats`;
      p.append(span);
    }
    return p;
  }
  if (block.kind === "call") {
    const box = h("div", "read-call");
    box.append(h("span", "read-tag", `call · ${block.name}`), h("pre", "", block.text));
    return box;
  }
  const box = h("div", `read-result${block.call?.error ? " is-error" : ""}`);
  const tag = h("span", "read-tag", `result${block.call ? ` · ${block.call.name} · ${block.call.latency_ms.toFixed(0)} ms` : ""}`);
  box.append(tag);
  if (block.call?.error) box.append(h("span", "badge err", `error: ${block.call.error}`));
  box.append(h("pre", "", block.text.trim()));
  return box;
}

export function renderPath(record: TreeRecord, path: TreePath, theme: Theme, toolNames: string[] = []): HTMLElement {
  const root = h("article", "path-reader");
  root.setAttribute("aria-label", `Path ${path.id}`);
  const head = h("div", "path-head");
  const title = h("h3", "", `Path #${path.id}`);
  const origin = h(
    "span",
    `badge ${path.origin === "fork" ? "info" : path.origin === "supplement" ? "warn" : ""}`,
    path.origin === "fork" ? `fork of #${path.parent} after tool ${path.fork_tool_index}` : path.origin,
  );
  head.append(title, origin);
  if (path.correct !== null) head.append(h("span", `badge ${path.correct ? "ok" : "err"}`, path.correct ? "✓ correct" : "✗ wrong"));
  if (path.format_ok === false) head.append(h("span", "badge err", "format invalid"));
  root.append(head);

  const facts = h("div", "stats path-facts");
  facts.append(
    fact("Reward", signed(path.reward)),
    fact("Advantage", signed(path.advantage)),
    fact("H_initial", path.h_initial === null ? "–" : path.h_initial.toFixed(3)),
    fact("Tokens", `${path.tokens} (${path.model_tokens} model)`),
    fact("Tool calls", String(path.tool_calls.length)),
    fact("Ended by", path.finish_reason ?? "–"),
  );
  root.append(facts);

  const hMax = entropyScaleMax(record.paths.flatMap((p) => p.entropies));
  const hasEntropy = path.entropies.some((e) => e !== null);
  if (hasEntropy) {
    const legend = h("div", "entropy-legend");
    legend.setAttribute("aria-hidden", "true");
    const bar = h("span", "entropy-bar");
    bar.style.background = `linear-gradient(90deg, ${[0, 0.33, 0.66, 1].map((t) => entropyTint(t * hMax, hMax, theme)).join(", ")})`;
    legend.append(h("span", "muted small", "token entropy 0"), bar, h("span", "muted small", `${hMax.toFixed(1)} nats+`));
    root.append(legend);
  } else if (path.entropies.length === 0) {
    root.append(h("p", "muted small", "Per-token entropies were left out of this record (size cap)."));
  }

  const body = h("div", "path-body");
  const blocks = readPath(path, toolNames);
  const shared = blocks.filter((b) => b.kind !== "fork" && b.shared);
  if (shared.length) {
    const details = h("details", "read-shared");
    const fork = blocks.find((b) => b.kind === "fork");
    const upTo = fork && fork.kind === "fork" ? fork.boundary : 0;
    details.append(h("summary", "", `Shared with path #${path.parent} (tokens 0–${upTo}, up to tool ${path.fork_tool_index})`));
    for (const b of shared) if (b.kind !== "fork") details.append(blockElement(b, hMax, theme));
    body.append(details);
  }
  for (const b of blocks) {
    if (b.kind === "fork") {
      body.append(h("div", "read-fork", `↳ forked from path #${b.parent} here, after tool result ${b.toolIndex ?? "?"}`));
      continue;
    }
    if (!b.shared) body.append(blockElement(b, hMax, theme));
  }
  if (!blocks.length) body.append(h("p", "muted", "This path's text was left out of the record."));
  root.append(body);
  return root;
}
