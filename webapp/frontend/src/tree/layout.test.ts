import { describe, expect, it } from "vitest";

import { buildPointTree, layoutTree, type PointData } from "./layout";
import { normaliseTree } from "./record";
import { handTree } from "./testTree";

const tree = () => normaliseTree(handTree(), { step: 1 });

function find(root: PointData, key: string): PointData | undefined {
  if (root.key === key) return root;
  for (const c of root.children) {
    const hit = find(c, key);
    if (hit) return hit;
  }
  return undefined;
}

describe("buildPointTree", () => {
  it("hangs initial paths and supplements off the prompt, forks off their decision point", () => {
    const root = buildPointTree(tree());
    expect(root.children.map((c) => c.key)).toEqual(["d:0:30", "d:1:20", "leaf:4"]);
    expect(find(root, "d:0:30")!.children.map((c) => c.key)).toEqual(["d:0:60", "d:2:55"]);
    expect(find(root, "d:2:55")!.children.map((c) => c.key)).toEqual(["leaf:2", "leaf:3"]);
  });

  it("draws a shared prefix once: a fork's first span starts at its fork boundary", () => {
    const root = buildPointTree(tree());
    const fork = find(root, "d:2:55")!;
    expect(fork.span).toMatchObject({ pathId: 2, start: 30, end: 55 });
    // The parent's first call (tokens 20–30) belongs to the shared prefix, not to the fork's span.
    expect(fork.span!.toolCalls.map((c) => c.index)).toEqual([2]);
    expect(find(root, "leaf:3")!.span).toMatchObject({ start: 55, end: 70 });
  });

  it("keeps every branch decision with its numbers and the path's H_initial", () => {
    const d = find(buildPointTree(tree()), "d:0:30")!.decision!;
    expect(d).toMatchObject({ tool_index: 1, delta_h: 0.6, forked: true, children: [2], h_initial: 0.4 });
    expect(find(buildPointTree(tree()), "d:0:60")!.decision!.forked).toBe(false);
  });

  it("counts tool errors and mean entropy on a span", () => {
    const span = find(buildPointTree(tree()), "d:1:20")!.span!;
    expect(span.toolErrors).toBe(1);
    // Tokens 0–9 have entropies 0 … 0.9; 10–19 are the tool result (null).
    expect(span.meanEntropy).toBeCloseTo(0.45, 9);
  });

  it("still shows a path whose parent is missing from a thinned record", () => {
    const raw = handTree() as { paths: unknown[] };
    raw.paths = raw.paths.filter((p) => (p as { id: number }).id !== 2);
    const root = buildPointTree(normaliseTree(raw));
    expect(find(root, "leaf:3")).toBeDefined();
  });
});

describe("layoutTree", () => {
  it("gives every path its own row and puts each point at its token position", () => {
    const layout = layoutTree(tree());
    expect(layout.rows).toBe(5);
    expect([...layout.rowOf.entries()].sort((a, b) => a[0] - b[0])).toEqual([
      [0, 0], [1, 3], [2, 1], [3, 2], [4, 4],
    ]);
    const node = (key: string) => layout.nodes.find((n) => n.key === key)!;
    expect(node("d:0:30")).toMatchObject({ x: 30, row: 0 });
    expect(node("leaf:3")).toMatchObject({ x: 70, row: 2 });
    expect(layout.maxPosition).toBe(100);
  });

  it("links each point to its parent point, one link per span", () => {
    const layout = layoutTree(tree());
    expect(layout.nodes).toHaveLength(10);
    expect(layout.links).toHaveLength(9);
    const fork = layout.links.find((l) => l.target.key === "d:2:55")!;
    expect(fork.source.key).toBe("d:0:30");
    expect(fork.source.row).toBe(0);
    expect(fork.target.row).toBe(1);
  });
});
