// A rollout tree laid out for drawing: shared prefixes appear once. Each path is one row; a fork
// leaves its parent's row at the tool-result boundary where it was decided (ARPO_SPEC.md §2). x is
// the response-token position, so where a fork happened and how long each path ran are visible.
import { cluster, hierarchy, type HierarchyPointNode } from "d3-hierarchy";

import type { Origin, TreeDecision, TreePath, TreeRecord, TreeToolCall } from "./record";

/** The stretch of one path drawn as the edge into a node: tokens [start, end) of `pathId`. */
export interface Span {
  pathId: number;
  origin: Origin;
  start: number;
  end: number;
  toolCalls: TreeToolCall[];
  toolErrors: number;
  meanEntropy: number | null;
}

export interface PointData {
  key: string;
  kind: "prompt" | "decision" | "leaf";
  pathId: number | null;
  /** Response-token index of the point. */
  position: number;
  span: Span | null;
  /** Decision points: the path's branch decision after tool result t, with the H_initial it compared against. */
  decision?: TreeDecision & { h_initial: number | null };
  /** Leaves: the path that ends here. */
  path?: TreePath;
  children: PointData[];
}

export interface LaidNode {
  key: string;
  data: PointData;
  /** Token position (left to right). */
  x: number;
  /** Row index (top to bottom); one row per path. */
  row: number;
}

export interface LaidLink {
  source: LaidNode;
  target: LaidNode;
  span: Span;
}

export interface TreeLayout {
  nodes: LaidNode[];
  links: LaidLink[];
  rows: number;
  maxPosition: number;
  /** Path id → its row. */
  rowOf: Map<number, number>;
}

function mean(values: ReadonlyArray<number | null>): number | null {
  let sum = 0;
  let n = 0;
  for (const v of values) if (v !== null) (sum += v), (n += 1);
  return n ? sum / n : null;
}

function spanOf(path: TreePath, start: number, end: number): Span {
  const toolCalls = path.tool_calls.filter((c) => c.result_start >= start && c.result_end <= end);
  return {
    pathId: path.id,
    origin: path.origin,
    start,
    end,
    toolCalls,
    toolErrors: toolCalls.filter((c) => c.error).length,
    meanEntropy: mean(path.entropies.slice(start, end)),
  };
}

/** The point tree: prompt → decision points along each path → leaves; forks hang off their decision point. */
export function buildPointTree(record: TreeRecord): PointData {
  const byId = new Map(record.paths.map((p) => [p.id, p]));
  const forksAt = new Map<string, TreePath[]>();
  for (const p of record.paths) {
    if (p.parent === null || p.fork_boundary === null || !byId.has(p.parent)) continue;
    const key = `${p.parent}:${p.fork_boundary}`;
    forksAt.set(key, [...(forksAt.get(key) ?? []), p]);
  }

  const chain = (path: TreePath, from: number, seen: Set<number>): PointData => {
    seen.add(path.id);
    const own = path.decisions.filter((d) => d.boundary > from);
    const boundaries = new Set(own.map((d) => d.boundary));
    // A fork recorded on the child but missing from the parent's decisions still gets its point.
    for (const key of forksAt.keys()) {
      const [pid, b] = key.split(":").map(Number);
      if (pid === path.id && b > from) boundaries.add(b);
    }
    const points = [...boundaries].filter((b) => b < path.tokens || path.tokens === 0).sort((a, b) => a - b);
    const leaf: PointData = {
      key: `leaf:${path.id}`,
      kind: "leaf",
      pathId: path.id,
      position: Math.max(path.tokens, points[points.length - 1] ?? from),
      span: null,
      path,
      children: [],
    };
    let next = leaf;
    // Build from the end, so each decision point's first child is the path's own continuation.
    for (let i = points.length; i >= 0; i--) {
      const start = i === 0 ? from : points[i - 1];
      next.span = spanOf(path, start, next.position);
      if (i === 0) break;
      const boundary = points[i - 1];
      const decision = own.find((d) => d.boundary === boundary);
      const forks = (forksAt.get(`${path.id}:${boundary}`) ?? []).filter((c) => !seen.has(c.id));
      const point: PointData = {
        key: `d:${path.id}:${boundary}`,
        kind: "decision",
        pathId: path.id,
        position: boundary,
        span: null,
        decision: decision ? { ...decision, h_initial: path.h_initial } : undefined,
        children: [next, ...forks.map((c) => chain(c, boundary, seen))],
      };
      next = point;
    }
    return next;
  };

  const seen = new Set<number>();
  const roots = record.paths.filter((p) => p.parent === null || !byId.has(p.parent));
  const children = roots.map((p) => chain(p, 0, seen));
  // Paths whose lineage loops or points at a missing fork point are still shown, from the prompt.
  for (const p of record.paths) if (!seen.has(p.id)) children.push(chain(p, p.fork_boundary ?? 0, seen));
  return { key: "root", kind: "prompt", pathId: null, position: 0, span: null, children };
}

/** Rows and positions for every point, and the links between them. */
export function layoutTree(record: TreeRecord): TreeLayout {
  const root = hierarchy(buildPointTree(record), (d) => d.children);
  // d3's cluster layout puts the leaves in drawing order, one unit apart; a path's row is its leaf's slot.
  const laid = cluster<PointData>().nodeSize([1, 1]).separation(() => 1)(root);
  const leaves = laid.leaves();
  const minX = Math.min(...leaves.map((l) => l.x));
  const rowOf = new Map<number, number>();
  for (const leaf of leaves) if (leaf.data.pathId !== null) rowOf.set(leaf.data.pathId, Math.round(leaf.x - minX));

  const nodes = new Map<HierarchyPointNode<PointData>, LaidNode>();
  let maxPosition = 0;
  laid.each((n) => {
    const row =
      n.data.pathId !== null
        ? (rowOf.get(n.data.pathId) ?? 0)
        : n.children?.length
          ? Math.min(...n.children.map((c) => rowOf.get(c.data.pathId ?? -1) ?? 0))
          : 0;
    maxPosition = Math.max(maxPosition, n.data.position);
    nodes.set(n, { key: n.data.key, data: n.data, x: n.data.position, row });
  });
  const links: LaidLink[] = laid.links().map((l) => ({
    source: nodes.get(l.source)!,
    target: nodes.get(l.target)!,
    span: l.target.data.span!,
  }));
  return { nodes: [...nodes.values()], links, rows: leaves.length, maxPosition, rowOf };
}
