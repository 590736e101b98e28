// The one websocket client of the run pages: connect, resume from the last sequence number, drop
// repeats, back off with jitter, hand each event to its subscribers. Charts subscribe; none polls.
import { type EventType, isRunMessage, REFUSAL_CODES, type RunMessage } from "./contract";

/** What the client needs of a WebSocket (the browser's, or a fake in tests). */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type SocketFactory = (url: string) => SocketLike;

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** connecting → open ⇄ waiting (back-off) … → refused (4401/4403/4404) or closed (by us). */
export type ConnectionState = "idle" | "connecting" | "open" | "waiting" | "refused" | "closed";

export interface ConnectionInfo {
  state: ConnectionState;
  /** Whether the history replay has ended (history.end seen since the last connect). */
  live: boolean;
  attempt: number;
  /** Milliseconds until the next try, when waiting. */
  retryInMs?: number;
  /** A sentence for people, when refused. */
  message?: string;
  code?: number;
}

export interface RunSocketOptions {
  url: string;
  /** The last seq already shown (history embedded in the page); 0 for everything. */
  after?: number;
  factory?: SocketFactory;
  timers?: Timers;
  random?: () => number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

type Handler = (message: RunMessage) => void;
type StateHandler = (info: ConnectionInfo) => void;

const OPEN = 1;

/** Back-off before try `attempt` (0-based): exponential, capped, with "equal jitter" (half fixed, half random). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

export class RunSocket {
  private readonly options: Required<Omit<RunSocketOptions, "after">>;
  private socket: SocketLike | null = null;
  private handlers = new Map<EventType | "*", Set<Handler>>();
  private stateHandlers = new Set<StateHandler>();
  private retryHandle: unknown = null;
  private attempt = 0;
  private stopped = false;
  lastSeq: number;
  /** Messages dropped because their seq was already seen (a replay overlapping live events). */
  duplicates = 0;
  info: ConnectionInfo = { state: "idle", live: false, attempt: 0 };

  constructor(options: RunSocketOptions) {
    this.lastSeq = options.after ?? 0;
    this.options = {
      url: options.url,
      factory: options.factory ?? ((url) => new WebSocket(url) as SocketLike),
      timers: options.timers ?? {
        setTimeout: (fn, ms) => window.setTimeout(fn, ms),
        clearTimeout: (h) => window.clearTimeout(h as number),
      },
      random: options.random ?? Math.random,
      baseDelayMs: options.baseDelayMs ?? 500,
      maxDelayMs: options.maxDelayMs ?? 30_000,
    };
  }

  /** Subscribe to one event type ("*" for all); returns the unsubscribe function. */
  on(type: EventType | "*", handler: Handler): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  onState(handler: StateHandler): () => void {
    this.stateHandlers.add(handler);
    handler(this.info);
    return () => this.stateHandlers.delete(handler);
  }

  connect(): void {
    if (this.socket || this.stopped) return;
    this.setState({ state: "connecting", live: false, attempt: this.attempt });
    const socket = this.options.factory(this.options.url);
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.setState({ state: "open", live: false, attempt: 0 });
      socket.send(JSON.stringify({ type: "resume", after: this.lastSeq }));
    };
    socket.onmessage = (event) => this.receive(event.data);
    socket.onerror = () => {
      // A close event always follows an error; the retry is decided there.
    };
    socket.onclose = (event) => this.closed(socket, event.code);
  }

  /** Skip the rest of the back-off (a "Reconnect now" button, or the browser coming back online). */
  retryNow(): void {
    if (this.retryHandle === null || this.stopped) return;
    this.options.timers.clearTimeout(this.retryHandle);
    this.retryHandle = null;
    this.connect();
  }

  /** Stop for good (page leaving): no retry after this. */
  close(): void {
    this.stopped = true;
    if (this.retryHandle !== null) this.options.timers.clearTimeout(this.retryHandle);
    this.retryHandle = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onclose = null;
      socket.close(1000, "page closed");
    }
    this.setState({ state: "closed", live: false, attempt: this.attempt });
  }

  private receive(raw: unknown): void {
    let message: unknown;
    try {
      message = JSON.parse(String(raw));
    } catch {
      return;
    }
    if (!isRunMessage(message)) return;
    if (message.seq === null) {
      this.dispatch(message);
      return;
    }
    if (message.type === "history.end") {
      this.lastSeq = Math.max(this.lastSeq, message.seq);
      this.setState({ ...this.info, live: true });
      this.dispatch(message);
      return;
    }
    if (message.seq <= this.lastSeq) {
      this.duplicates += 1;
      return;
    }
    this.lastSeq = message.seq;
    this.dispatch(message);
  }

  private dispatch(message: RunMessage): void {
    for (const key of [message.type, "*"] as const) {
      for (const handler of this.handlers.get(key) ?? []) {
        try {
          handler(message);
        } catch (error) {
          // One broken subscriber must not starve the others (or the sequence bookkeeping).
          console.error(error);
        }
      }
    }
  }

  private closed(socket: SocketLike, code: number): void {
    if (socket !== this.socket) return;
    this.socket = null;
    if (this.stopped) return;
    const refusal = REFUSAL_CODES[code];
    if (refusal) {
      this.stopped = true;
      this.setState({ state: "refused", live: false, attempt: this.attempt, code, message: refusal });
      return;
    }
    const delay = backoffDelay(this.attempt, this.options.baseDelayMs, this.options.maxDelayMs, this.options.random);
    this.attempt += 1;
    this.setState({ state: "waiting", live: false, attempt: this.attempt, retryInMs: delay, code });
    this.retryHandle = this.options.timers.setTimeout(() => {
      this.retryHandle = null;
      this.connect();
    }, delay);
  }

  /** Whether a socket is open now (for a status dot). */
  get isOpen(): boolean {
    return this.socket?.readyState === OPEN;
  }

  private setState(info: ConnectionInfo): void {
    this.info = info;
    for (const handler of this.stateHandlers) handler(info);
  }
}
