// @vitest-environment happy-dom
import { beforeEach, describe, expect, it } from "vitest";

import { HeadRefresher } from "./head";

const head = (status: string, actions: string, token = "a1") => `
  <div data-run-head data-status="${status}">
    <span class="badge">${status}</span>
    ${actions.includes("cancel") ? `<form method="post" action="/runs/7/cancel/"><input type="hidden" name="csrfmiddlewaretoken" value="${token}"><button type="submit">Cancel run</button></form>` : ""}
    ${actions.includes("resume") ? `<form method="post" action="/runs/7/resume/"><input type="hidden" name="csrfmiddlewaretoken" value="${token}"><button type="submit">Resume</button></form>` : ""}
    <form method="post" action="/runs/7/clone/"><input type="hidden" name="csrfmiddlewaretoken" value="${token}"><button type="submit">Clone</button></form>
  </div>`;

function serve(bodies: Array<string | number | Error>) {
  const calls: string[] = [];
  let release: () => void = () => {};
  const gate = { held: false };
  const fetchFn = async (url: string) => {
    calls.push(url);
    if (gate.held) await new Promise<void>((resolve) => (release = resolve));
    const body = bodies.shift() ?? bodies.at(-1) ?? 500;
    if (body instanceof Error) throw body;
    if (typeof body === "number") return new Response("no", { status: body });
    return new Response(body, { status: 200, headers: { "Content-Type": "text/html" } });
  };
  return { calls, fetchFn, gate, release: () => release() };
}

describe("HeadRefresher", () => {
  beforeEach(() => {
    document.body.innerHTML = `<main>${head("running", "cancel")}<div id="rest">charts</div></main>`;
  });

  it("swaps in the server's head: a finished run no longer offers Cancel", async () => {
    const server = serve([head("succeeded", "")]);
    const refresher = new HeadRefresher(document, "/runs/7/head/", server.fetchFn);
    refresher.request();
    await refresher.idle;
    expect(server.calls).toEqual(["/runs/7/head/"]);
    const shown = document.querySelector<HTMLElement>("[data-run-head]")!;
    expect(shown.dataset.status).toBe("succeeded");
    expect(shown.textContent).not.toContain("Cancel run");
    expect(document.querySelectorAll("[data-run-head]")).toHaveLength(1);
    expect(document.getElementById("rest")!.textContent).toBe("charts");
  });

  it("asks once more, not once per ask, for asks made while a request is out", async () => {
    const server = serve([head("running", "cancel"), head("cancelled", "resume")]);
    server.gate.held = true;
    const refresher = new HeadRefresher(document, "/h/", server.fetchFn);
    refresher.request();
    refresher.request();
    refresher.request();
    const first = refresher.idle;
    expect(server.calls).toHaveLength(1);
    server.gate.held = false;
    server.release();
    await first;
    expect(server.calls).toHaveLength(2);
    expect(document.querySelector<HTMLElement>("[data-run-head]")!.dataset.status).toBe("cancelled");
    expect(document.querySelector("[data-run-head]")!.textContent).toContain("Resume");
  });

  it("keeps the head it has when the server refuses or cannot be reached", async () => {
    const before = document.querySelector("[data-run-head]");
    for (const failure of [403, 404, new TypeError("network")]) {
      const refresher = new HeadRefresher(document, "/h/", serve([failure]).fetchFn);
      refresher.request();
      await refresher.idle;
      expect(document.querySelector("[data-run-head]")).toBe(before);
    }
  });

  it("leaves the page alone when only the CSRF tokens differ", async () => {
    const before = document.querySelector("[data-run-head]");
    const refresher = new HeadRefresher(document, "/h/", serve([head("running", "cancel", "b2")]).fetchFn);
    refresher.request();
    await refresher.idle;
    expect(document.querySelector("[data-run-head]")).toBe(before);
  });

  it("keeps keyboard focus on a control that is still there", async () => {
    document.querySelector<HTMLButtonElement>('form[action="/runs/7/clone/"] button')!.focus();
    const refresher = new HeadRefresher(document, "/h/", serve([head("succeeded", "")]).fetchFn);
    refresher.request();
    await refresher.idle;
    expect(document.activeElement?.textContent).toBe("Clone");
    expect(document.activeElement?.closest("[data-run-head]")?.getAttribute("data-status")).toBe("succeeded");
  });
});
