// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";

import type { SocketLike } from "./live/socket";
import { mountPlayground, type PlaygroundConfig } from "./playground";

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: string[] = [];
  closed = false;
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  send(data: string): void {
    this.sent.push(data);
  }
  close(): void {
    this.closed = true;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }
  deliver(message: unknown): void {
    this.onmessage?.({ data: JSON.stringify(message) } as MessageEvent);
  }
}

const SIDE = (side: string) => `
  <section data-side="${side}"><span data-state></span><div data-body><p class="answer-placeholder">…</p></div></section>`;

function page(config: Partial<PlaygroundConfig> = {}) {
  document.body.innerHTML = `
    <form data-ask-form><textarea name="question"></textarea><button data-ask>Ask</button>
      <button type="button" data-example="How old is Senna?">example</button></form>
    <span data-session-status></span><span data-conn hidden></span>${SIDE("trained")}${SIDE("base")}`;
  const sockets: FakeSocket[] = [];
  const mounted = mountPlayground(
    document,
    {
      session_id: 5,
      ws_url: "/ws/playground/5/",
      last_seq: 2,
      state: { status: "running", sides: { trained: "running", base: "queued" } },
      events: [
        { seq: 1, type: "playground.status", side: "trained", data: { state: "loading", model: "step 3" } },
        { seq: 2, type: "playground.status", side: "trained", data: { state: "answering", model: "step 3", load_s: 1.2 } },
      ],
      ...config,
    },
    {
      socketFactory: () => {
        const s = new FakeSocket();
        sockets.push(s);
        return s;
      },
    },
  );
  return { mounted, socket: sockets[0] };
}

const side = (name: string) => document.querySelector<HTMLElement>(`[data-side="${name}"]`)!;

describe("mountPlayground", () => {
  it("draws the history, resumes after its last seq and streams both sides as events come", () => {
    const { socket } = page();
    socket.open();
    expect(JSON.parse(socket.sent[0])).toEqual({ type: "resume", after: 2 });
    expect(side("trained").querySelector("[data-state]")!.textContent).toBe("writing");
    expect(side("base").querySelector("[data-state]")!.textContent).toBe("waiting for a worker");

    socket.deliver({ seq: 3, type: "playground.model", side: "trained", data: { text: "<think>Look it " } });
    socket.deliver({ seq: 4, type: "playground.model", side: "trained", data: { text: "up.</think>" } });
    socket.deliver({ seq: 5, type: "playground.tool_call", side: "trained",
      data: { index: 1, name: "python", arguments: { code: "print(6*7)" }, raw: "", error: null } }); // prettier-ignore
    socket.deliver({ seq: 6, type: "playground.tool_result", side: "trained",
      data: { index: 1, name: "python", output: "42\n", error: null, latency_ms: 30 } }); // prettier-ignore
    socket.deliver({ seq: 7, type: "playground.status", side: "base", data: { state: "loading", model: "SmolLM2" } });

    const trained = side("trained");
    expect(trained.querySelector(".pg-think")!.textContent).toBe("Look it up.");
    expect(trained.querySelector(".read-call pre")!.textContent).toBe("print(6*7)");
    expect(trained.querySelector(".read-result pre")!.textContent).toBe("42");
    expect(side("base").querySelector(".pg-status")!.textContent).toBe("Loading the model…");
    expect(trained.querySelector(".answer-placeholder")).toBeNull();
  });

  it("shows each side's end, and closes the socket once the session is over", () => {
    const { socket } = page();
    socket.open();
    socket.deliver({ seq: 3, type: "playground.model", side: "trained", data: { text: "<answer>It is \\boxed{42}</answer>" } });
    socket.deliver({ seq: 4, type: "playground.final", side: "trained",
      data: { answer: "42", text: "", finish_reason: "eos", tool_calls: 1, tokens: 20, seconds: 3 } }); // prettier-ignore
    socket.deliver({ seq: 5, type: "playground.error", side: "base", data: { code: "failed", message: "Out of memory" } });
    expect(side("trained").querySelector(".pg-answer .pg-boxed")!.textContent).toBe("42");
    expect(side("trained").querySelector(".pg-final-answer")!.textContent).toBe("42");
    expect(side("base").querySelector("[role=alert]")!.textContent).toContain("Out of memory");
    expect(socket.closed).toBe(false);
    socket.deliver({ seq: null, type: "playground.session", side: null, data: { status: "done", sides: { trained: "done", base: "failed" } } });
    expect(document.querySelector("[data-session-status]")!.textContent).toBe("Done");
    expect(socket.closed).toBe(true);
  });

  it("does not open a socket for a session that has ended", () => {
    const { socket, mounted } = page({ state: { status: "done", sides: { trained: "done", base: "done" } } });
    expect(socket).toBeUndefined();
    expect(mounted!.states.trained.phase).toBe("done"); // the session's state fills in what no event said
  });

  it("says why a refused socket is not retried", () => {
    const { socket } = page();
    socket.onclose?.({ code: 4404 } as CloseEvent);
    const conn = document.querySelector<HTMLElement>("[data-conn]")!;
    expect(conn.hidden).toBe(false);
    expect(conn.textContent).toContain("not visible to you");
  });

  it("fills the box from an example and asks with Ctrl+Enter", () => {
    page({ session_id: null });
    const form = document.querySelector<HTMLFormElement>("[data-ask-form]")!;
    let asked = 0;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      asked += 1;
    });
    document.querySelector<HTMLButtonElement>("[data-example]")!.click();
    const box = document.querySelector<HTMLTextAreaElement>("textarea")!;
    expect(box.value).toBe("How old is Senna?");
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", ctrlKey: true, bubbles: true }));
    expect(asked).toBe(1);
  });
});
