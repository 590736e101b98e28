// The engine's real records (src/fixtures/rollout_trees.json: see its "source") through the tree code.
import { describe, expect, it } from "vitest";

import fixture from "../fixtures/rollout_trees.json";
import { summarise } from "./filters";
import { buildPointTree, layoutTree, type PointData } from "./layout";
import { readPath } from "./reading";
import { normaliseTree } from "./record";

const trees = fixture.trees.map((t) => normaliseTree(t.data, { step: t.step }));

function walk(node: PointData, visit: (n: PointData) => void): void {
  visit(node);
  for (const c of node.children) walk(c, visit);
}

describe.each(trees.map((t) => [t.prompt_index, t] as const))("the recorded tree of prompt %i", (_, tree) => {
  it("has one leaf and one row per path", () => {
    const layout = layoutTree(tree);
    expect(layout.rows).toBe(tree.paths.length);
    expect(new Set(layout.rowOf.values()).size).toBe(tree.paths.length);
  });

  it("draws each token once: spans add up to every path's own tokens after its fork", () => {
    let drawn = 0;
    walk(buildPointTree(tree), (n) => (drawn += n.span ? n.span.end - n.span.start : 0));
    const own = tree.paths.reduce((sum, p) => sum + p.tokens - (p.fork_boundary ?? 0), 0);
    expect(drawn).toBe(own);
  });

  it("hangs every fork off its parent's decision at the fork boundary", () => {
    const root = buildPointTree(tree);
    for (const p of tree.paths.filter((q) => q.origin === "fork")) {
      let found = false;
      walk(root, (n) => {
        if (n.key === `d:${p.parent}:${p.fork_boundary}` && n.children.some((c) => c.span?.pathId === p.id)) found = true;
      });
      expect(found, `path ${p.id}`).toBe(true);
      const decision = tree.paths.find((q) => q.id === p.parent)!.decisions.find((d) => d.boundary === p.fork_boundary);
      expect(decision?.children).toContain(p.id);
    }
  });

  it("reads every path with its tool results set apart", () => {
    for (const p of tree.paths) {
      const blocks = readPath(p);
      expect(blocks.filter((b) => b.kind === "result")).toHaveLength(p.segments.filter((s) => s.kind === "tool").length);
    }
  });

  it("summarises without losing a path", () => {
    expect(summarise(tree).paths).toBe(tree.paths.length);
  });
});
