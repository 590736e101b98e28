// The playground page: the question form (Ctrl+Enter asks, examples fill the box) and a session's two
// answers side by side, drawn from the history embedded in the page and then from the session's websocket
// (the run socket's protocol: resume from the last seq, nothing twice, back-off, refusals shown).
import "./playground.css";

import { readJsonConfig, socketUrl } from "./live/config";
import type { RunMessage } from "./live/contract";
import { type ConnectionInfo, RunSocket, type SocketFactory } from "./live/socket";
import { type AnswerState, applyEvent, emptyAnswer, type Phase, phaseFromSession, type Side } from "./playground/answer";
import { AnswerView } from "./playground/view";

export interface PlaygroundConfig {
  session_id: number | null;
  ws_url?: string;
  last_seq?: number;
  state?: { status: string; sides: Record<string, string> };
  events?: RunMessage[];
}

export interface Playground {
  states: Record<Side, AnswerState>;
  socket: RunSocket | null;
}

const SIDES: Side[] = ["trained", "base"];
const REFUSED: Record<number, string> = {
  4401: "Sign in again to watch this session.",
  4403: "This page may not watch the session from here.",
  4404: "This session does not exist or is not visible to you.",
};
const SESSION_BADGE: Record<string, [string, string]> = {
  queued: ["info", "Queued"],
  running: ["info", "Answering"],
  done: ["ok", "Done"],
  failed: ["err", "Failed"],
};

/** Ctrl/⌘+Enter asks; an example fills the box; one click sends once. */
export function bindAskForm(doc: Document): void {
  const form = doc.querySelector<HTMLFormElement>("[data-ask-form]");
  const box = form?.querySelector<HTMLTextAreaElement>("textarea");
  if (!form || !box) return;
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  for (const button of form.querySelectorAll<HTMLButtonElement>("[data-example]")) {
    button.addEventListener("click", () => {
      box.value = button.dataset.example ?? "";
      box.focus();
    });
  }
  form.addEventListener("submit", () => {
    const submit = form.querySelector<HTMLButtonElement>("[data-ask]");
    if (submit && box.value.trim()) {
      // Disabled after the browser has taken the form's data, so the POST still carries it.
      setTimeout(() => {
        submit.disabled = true;
        submit.textContent = "Asking…";
      });
    }
  });
}

function initialPhase(side: string | undefined): Phase {
  return side === "queued" ? "queued" : side === "failed" ? "failed" : side === "done" ? "done" : "idle";
}

export function mountPlayground(
  doc: Document,
  config: PlaygroundConfig,
  options: { socketFactory?: SocketFactory; offline?: boolean } = {},
): Playground | null {
  bindAskForm(doc);
  if (config.session_id === null || config.session_id === undefined) return null;
  const views = new Map<Side, AnswerView>();
  const states = {} as Record<Side, AnswerState>;
  for (const side of SIDES) {
    const root = doc.querySelector<HTMLElement>(`[data-side="${side}"]`);
    if (root) views.set(side, new AnswerView(root));
    states[side] = emptyAnswer(initialPhase(config.state?.sides?.[side]));
  }
  const badge = doc.querySelector<HTMLElement>("[data-session-status]");
  const conn = doc.querySelector<HTMLElement>("[data-conn]");
  let status = config.state?.status ?? "queued";
  let socket: RunSocket | null = null;

  const draw = (side: Side) => views.get(side)?.render(states[side]);
  const showStatus = (next: string) => {
    status = next;
    if (!badge) return;
    const [cls, label] = SESSION_BADGE[next] ?? ["", next];
    badge.className = `badge ${cls}`.trim();
    badge.textContent = label;
    for (const copy of doc.querySelectorAll<HTMLElement>("[data-session-status-copy]")) {
      copy.className = `badge ${cls}`.trim();
      copy.textContent = label.toLowerCase();
    }
  };
  const receive = (message: RunMessage) => {
    if (message.type === "playground.session") {
      const data = message.data as { status?: string; sides?: Record<string, string> };
      if (data.status) showStatus(data.status);
      for (const side of SIDES) {
        const phase = phaseFromSession(data.sides?.[side], states[side].phase);
        if (phase !== states[side].phase) (states[side] = { ...states[side], phase }), draw(side);
      }
      if (data.status === "done" || data.status === "failed") socket?.close();
      return;
    }
    const side = message.side;
    if (side !== "trained" && side !== "base") return;
    states[side] = applyEvent(states[side], message);
    draw(side);
  };

  for (const message of config.events ?? []) {
    const side = message.side;
    if (side === "trained" || side === "base") states[side] = applyEvent(states[side], message);
  }
  for (const side of SIDES) {
    states[side] = { ...states[side], phase: phaseFromSession(config.state?.sides?.[side], states[side].phase) };
  }
  SIDES.forEach(draw);
  showStatus(status);
  const finished = status === "done" || status === "failed";
  if (options.offline || finished || !config.ws_url) return { states, socket };

  socket = new RunSocket({
    url: socketUrl(config.ws_url, doc.location?.href ?? "http://localhost/"),
    after: config.last_seq ?? 0,
    factory: options.socketFactory,
  });
  socket.on("*", receive);
  socket.onState((info) => showConnection(conn, info));
  socket.connect();
  doc.defaultView?.addEventListener("pagehide", () => socket?.close());
  return { states, socket };
}

function showConnection(el: HTMLElement | null, info: ConnectionInfo): void {
  if (!el) return;
  const [cls, text] =
    info.state === "open"
      ? info.live
        ? ["ok", "● Live"]
        : ["info", "Catching up…"]
      : info.state === "waiting"
        ? ["warn", `Reconnecting in ${Math.ceil((info.retryInMs ?? 0) / 1000)} s`]
        : info.state === "refused"
          ? ["err", REFUSED[info.code ?? 0] ?? "Refused"]
          : info.state === "connecting"
            ? ["info", "Connecting…"]
            : ["", ""];
  el.hidden = info.state === "closed" || info.state === "idle";
  el.className = `badge conn-badge ${cls}`.trim();
  el.textContent = text;
  if (info.state === "refused") el.setAttribute("role", "alert");
}

const config = readJsonConfig<PlaygroundConfig>(document, "playground-config");
if (config) {
  const page = mountPlayground(document, config, { offline: document.documentElement.dataset.offline === "true" });
  (window as unknown as { arpoPlayground?: Playground | null }).arpoPlayground = page;
}
