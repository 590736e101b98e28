// Run list: draw the sparklines the template lists as
//   <span data-sparkline='[0.1, 0.2, null, 0.4]' data-label="reward"></span>
import { sparkline } from "./charts/sparkline";

export function drawSparklines(root: ParentNode): void {
  for (const el of root.querySelectorAll<HTMLElement>("[data-sparkline]")) {
    let values: (number | null)[] = [];
    try {
      values = JSON.parse(el.dataset.sparkline ?? "[]");
    } catch {
      continue;
    }
    el.replaceChildren(sparkline(values, el.dataset.label ?? "trend"));
  }
}

drawSparklines(document);
