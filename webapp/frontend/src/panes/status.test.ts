// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";

import { formatDuration } from "./format";
import { StatusPane } from "./panes";

const text = (root: HTMLElement, key: string) => root.querySelector(`[data-s="${key}"]`)?.textContent ?? null;
const progress = (root: HTMLElement) => root.querySelector(".progress")!.getAttribute("aria-valuenow");

describe("StatusPane", () => {
  it("drops the queue position once the run has left the queue", () => {
    const root = document.createElement("div");
    const pane = new StatusPane(root, 3);
    pane.setStatus({ status: "queued", steps_done: 0, queue_position: 2, eta_s: null });
    expect(text(root, "queue")).toBe("#2");
    pane.setStatus({ status: "running" });
    expect(text(root, "queue")).toBeNull();
    pane.setStatus({ status: "succeeded", reason: "" });
    expect(text(root, "queue")).toBeNull();
  });

  it("takes progress from the steps done, not from an older snapshot", () => {
    const root = document.createElement("div");
    const pane = new StatusPane(root, 3);
    pane.setStatus({ status: "running", steps_done: 2, progress: 2 / 3, eta_s: 60 });
    expect(progress(root)).toBe("67");
    pane.step(3, Date.now(), true);
    pane.setStatus({ status: "succeeded", reason: "" }); // the engine's own word: no progress in it
    expect(progress(root)).toBe("100");
    expect(text(root, "step")).toBe("3 / 3");
    expect(text(root, "eta")).toBe("done");
  });

  it("moves the server's ETA on with each step until live timing takes over", () => {
    const root = document.createElement("div");
    const pane = new StatusPane(root, 10);
    pane.setStatus({ status: "running", steps_done: 4, eta_s: 600 }); // 6 steps left: 100 s a step
    expect(text(root, "eta")).toBe(formatDuration(600));
    pane.step(5, 1_000_000, true); // one live step: no pace of its own yet
    expect(text(root, "eta")).toBe(formatDuration(500));
    pane.step(6, 1_010_000, true); // two live steps 10 s apart: 4 left × 10 s
    expect(text(root, "eta")).toBe(formatDuration(40));
  });

  it("never lets a snapshot take back steps already seen", () => {
    const root = document.createElement("div");
    const pane = new StatusPane(root, 10);
    pane.step(7, Date.now(), false);
    pane.setStatus({ status: "running", steps_done: 6 });
    expect(text(root, "step")).toBe("7 / 10");
  });

  it("shows a failure's reason as an error and a cancel's as a plain note", () => {
    const root = document.createElement("div");
    const pane = new StatusPane(root, 3);
    pane.setStatus({ status: "cancelled", reason: "Cancelled; the last checkpoint is kept." });
    expect(root.querySelector(".status-reason")!.classList.contains("is-error")).toBe(false);
    pane.setStatus({ status: "failed", reason: "The model never called a tool." });
    expect(root.querySelector(".status-reason")!.classList.contains("is-error")).toBe(true);
  });
});
