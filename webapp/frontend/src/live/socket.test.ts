import { describe, expect, it } from "vitest";

import type { RunMessage } from "./contract";
import { backoffDelay, type ConnectionInfo, RunSocket, type SocketLike, type Timers } from "./socket";

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: string[] = [];
  closedWith: number | null = null;
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  constructor(readonly url: string) {}
  send(data: string): void {
    this.sent.push(data);
  }
  close(code = 1000): void {
    this.closedWith = code;
  }
  // The server's side:
  open(): void {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }
  deliver(message: unknown): void {
    this.onmessage?.({ data: JSON.stringify(message) } as MessageEvent);
  }
  drop(code: number): void {
    this.readyState = 3;
    this.onclose?.({ code } as CloseEvent);
  }
}

class FakeTimers implements Timers {
  pending: { fn: () => void; ms: number; id: number }[] = [];
  private next = 1;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.push({ fn, ms, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending = this.pending.filter((t) => t.id !== handle);
  }
  fire(): number {
    const timer = this.pending.shift();
    if (!timer) throw new Error("no timer pending");
    timer.fn();
    return timer.ms;
  }
}

function setup(after = 0) {
  const sockets: FakeSocket[] = [];
  const timers = new FakeTimers();
  const client = new RunSocket({
    url: "ws://test/ws/runs/7/",
    after,
    factory: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    timers,
    random: () => 0.5,
    baseDelayMs: 100,
    maxDelayMs: 1000,
  });
  const seen: RunMessage[] = [];
  client.on("*", (m) => seen.push(m));
  const states: ConnectionInfo[] = [];
  client.onState((info) => states.push(info));
  client.connect();
  return { client, sockets, timers, seen, states, last: () => sockets[sockets.length - 1] };
}

const metrics = (seq: number, step = seq) => ({ seq, type: "run.metrics", step, data: { "reward/mean": seq / 10 } });

describe("RunSocket", () => {
  it("asks to resume after the last seq it was given once the socket opens", () => {
    const { last } = setup(41);
    expect(last().url).toBe("ws://test/ws/runs/7/");
    last().open();
    expect(JSON.parse(last().sent[0])).toEqual({ type: "resume", after: 41 });
  });

  it("hands each message to the subscribers of its type and to '*'", () => {
    const { client, last } = setup();
    const rewards: number[] = [];
    client.on("run.metrics", (m) => rewards.push(m.data["reward/mean"] as number));
    const logs: unknown[] = [];
    client.on("run.log", (m) => logs.push(m.data));
    last().open();
    last().deliver(metrics(1));
    last().deliver({ seq: 2, type: "run.log", data: { line: "hello" } });
    expect(rewards).toEqual([0.1]);
    expect(logs).toEqual([{ line: "hello" }]);
  });

  it("drops messages whose seq it has already seen", () => {
    const { client, seen, last } = setup();
    last().open();
    for (const seq of [1, 2, 2, 1, 3]) last().deliver(metrics(seq));
    expect(seen.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect(client.duplicates).toBe(2);
  });

  it("accepts gaps in seq without resyncing (private events are not sent to everyone)", () => {
    const { seen, sockets, last } = setup();
    last().open();
    last().deliver(metrics(1));
    last().deliver(metrics(5));
    expect(seen.map((m) => m.seq)).toEqual([1, 5]);
    expect(sockets).toHaveLength(1);
  });

  it("shows an out-of-band status (seq null) without moving the resume point", () => {
    const { client, seen, last } = setup();
    last().open();
    last().deliver(metrics(3));
    last().deliver({ seq: null, type: "run.status", data: { status: "resuming" } });
    last().deliver({ seq: null, type: "run.metrics", data: {} });
    expect(seen.map((m) => m.type)).toEqual(["run.metrics", "run.status"]);
    expect(client.lastSeq).toBe(3);
  });

  it("ignores frames that are not JSON or not run messages", () => {
    const { seen, last } = setup();
    last().open();
    last().onmessage?.({ data: "not json" } as MessageEvent);
    last().deliver({ seq: 1, type: "run.bogus", data: {} });
    last().deliver({ type: "run.metrics", data: {} });
    expect(seen).toEqual([]);
  });

  it("marks the stream live at history.end even though its seq is not new", () => {
    const { client, seen, last } = setup();
    last().open();
    last().deliver(metrics(1));
    expect(client.info.live).toBe(false);
    last().deliver({ seq: 1, type: "history.end", data: {} });
    expect(client.info.live).toBe(true);
    expect(seen.map((m) => m.type)).toEqual(["run.metrics", "history.end"]);
  });

  it("reconnects after a drop and resumes from the last seq it saw", () => {
    const { sockets, timers, seen, last } = setup();
    last().open();
    last().deliver(metrics(1));
    last().deliver(metrics(2));
    last().drop(1006);
    expect(timers.pending).toHaveLength(1);
    timers.fire();
    expect(sockets).toHaveLength(2);
    last().open();
    expect(JSON.parse(last().sent[0])).toEqual({ type: "resume", after: 2 });
    // The server replays from 3; an overlapping 2 would be dropped.
    last().deliver(metrics(2));
    last().deliver(metrics(3));
    expect(seen.map((m) => m.seq)).toEqual([1, 2, 3]);
  });

  it("backs off exponentially while the server stays away, and resets after a successful open", () => {
    const { timers, last, states } = setup();
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      last().drop(1006);
      delays.push(timers.fire());
    }
    // random() = 0.5 gives 3/4 of the ceiling: 100, 200, 400, 800, then the 1000 cap.
    expect(delays).toEqual([75, 150, 300, 600, 750]);
    expect(states.some((s) => s.state === "waiting" && s.retryInMs === 75)).toBe(true);
    last().open();
    last().drop(1006);
    expect(timers.fire()).toBe(75);
  });

  it.each([4401, 4403, 4404])("stops and reports a refusal (close code %i) instead of retrying", (code) => {
    const { client, timers, last } = setup();
    last().drop(code);
    expect(timers.pending).toHaveLength(0);
    expect(client.info.state).toBe("refused");
    expect(client.info.code).toBe(code);
    expect(client.info.message).toMatch(/\w/);
  });

  it("does not reconnect after close() and closes the socket cleanly", () => {
    const { client, sockets, timers, last } = setup();
    last().open();
    const socket = last();
    client.close();
    expect(socket.closedWith).toBe(1000);
    expect(timers.pending).toHaveLength(0);
    expect(client.info.state).toBe("closed");
    expect(sockets).toHaveLength(1);
  });

  it("cancels a pending retry on close()", () => {
    const { client, timers, last } = setup();
    last().drop(1006);
    client.close();
    expect(timers.pending).toHaveLength(0);
  });

  it("retries at once when asked during the back-off", () => {
    const { client, timers, sockets, last } = setup();
    last().drop(1006);
    client.retryNow();
    expect(timers.pending).toHaveLength(0);
    expect(sockets).toHaveLength(2);
  });

  it("keeps delivering to other subscribers when one throws", () => {
    const { client, last } = setup();
    const got: number[] = [];
    const quiet = console.error;
    console.error = () => {};
    client.on("run.metrics", () => {
      throw new Error("broken chart");
    });
    client.on("run.metrics", (m) => got.push(m.seq!));
    last().open();
    last().deliver(metrics(1));
    console.error = quiet;
    expect(got).toEqual([1]);
  });

  it("unsubscribes", () => {
    const { client, last } = setup();
    const got: number[] = [];
    const off = client.on("run.metrics", (m) => got.push(m.seq!));
    last().open();
    last().deliver(metrics(1));
    off();
    last().deliver(metrics(2));
    expect(got).toEqual([1]);
  });
});

describe("backoffDelay", () => {
  it("stays between half and all of the capped exponential", () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = Math.min(30_000, 500 * 2 ** attempt);
      expect(backoffDelay(attempt, 500, 30_000, () => 0)).toBe(ceiling / 2);
      expect(backoffDelay(attempt, 500, 30_000, () => 1)).toBe(ceiling);
    }
  });
});
