// A tiny SVG trend line for run lists (no chart library: dozens of them on one page cost nothing).

/** SVG path data for the present values scaled into w × h (1 px padding); gaps break the line. */
export function sparkPath(values: ReadonlyArray<number | null>, width: number, height: number): string {
  const present = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (present.length === 0) return "";
  const lo = Math.min(...present);
  const hi = Math.max(...present);
  const n = values.length;
  const x = (i: number) => (n === 1 ? width / 2 : 1 + (i / (n - 1)) * (width - 2));
  const y = (v: number) => (hi === lo ? height / 2 : 1 + (1 - (v - lo) / (hi - lo)) * (height - 2));
  let d = "";
  let pen = false;
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      pen = false;
      return;
    }
    d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  });
  return d;
}

/** An <svg> sparkline with a text alternative (first → last value). */
export function sparkline(values: ReadonlyArray<number | null>, label: string, width = 96, height = 24): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "sparkline");
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  const present = values.filter((v): v is number => v !== null);
  const fmt = (v: number) => String(Number(v.toPrecision(3)));
  svg.setAttribute(
    "aria-label",
    present.length ? `${label}: ${fmt(present[0])} → ${fmt(present[present.length - 1])}` : `${label}: no data yet`,
  );
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", sparkPath(values, width, height));
  svg.append(path);
  return svg;
}
