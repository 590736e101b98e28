// The run page's head (name, status badge, actions, state line) is server-rendered: what a run offers
// (Cancel, Resume, Checkpoints…) depends on its state and its owner's rights, which only the server knows.
// When the run moves on (status, phase, step) the page fetches the head again and swaps it in, so a run
// that finished while the page was open no longer offers "Cancel run".

export type Fetch = (url: string, init: RequestInit) => Promise<Response>;

export class HeadRefresher {
  private inFlight = false;
  private again = false;
  /** Settles when the refresh in flight (and any it queued) is done: for tests. */
  idle: Promise<void> = Promise.resolve();

  constructor(
    private readonly doc: Document,
    private readonly url: string,
    private readonly fetchFn: Fetch = (u, init) => fetch(u, init),
  ) {}

  /** Ask for a fresh head: one request at a time; asks during one make exactly one more after it. */
  request(): void {
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = true;
    this.idle = this.run();
  }

  private async run(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.refreshOnce();
      } while (this.again);
    } finally {
      this.inFlight = false;
    }
  }

  private async refreshOnce(): Promise<void> {
    const current = this.doc.querySelector<HTMLElement>("[data-run-head]");
    if (!current) return;
    let text: string;
    try {
      const response = await this.fetchFn(this.url, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
        cache: "no-store",
      });
      // Signed out, or the run is gone: keep what is shown; the socket's own close code says why.
      if (!response.ok) return;
      text = await response.text();
    } catch {
      return; // offline for a moment: the next status or step asks again
    }
    const fresh = new DOMParser().parseFromString(text, "text/html").querySelector<HTMLElement>("[data-run-head]");
    if (!fresh || signature(fresh) === signature(current)) return;
    // Keep keyboard focus on the same control when it is still there (its form action names it).
    const focused = this.doc.activeElement?.closest("form")?.getAttribute("action") ?? null;
    const imported = this.doc.importNode(fresh, true);
    current.replaceWith(imported);
    if (focused === null) return;
    const form = [...imported.querySelectorAll("form")].find((f) => f.getAttribute("action") === focused);
    form?.querySelector("button")?.focus();
  }
}

/** The head's markup without its CSRF tokens, which Django masks afresh on every render. */
function signature(head: HTMLElement): string {
  const copy = head.cloneNode(true) as HTMLElement;
  for (const input of copy.querySelectorAll("input[name=csrfmiddlewaretoken]")) input.removeAttribute("value");
  return copy.outerHTML;
}
