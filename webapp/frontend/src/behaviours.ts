// Small page behaviours every template can opt into with data attributes; pages work without them.
//
//   <button type="button" data-copy="arpo_abc…">Copy</button>          copies the attribute's text
//   <button type="button" data-copy-target="token-1">Copy</button>     copies #token-1's value or text
//   <form method="post" data-confirm="Delete this dataset?">…</form>    asks before submitting

export type Clipboard = { writeText(text: string): Promise<void> };
export type Confirm = (message: string) => boolean;

const FEEDBACK_MS = 2000;

/** The text a copy button stands for: its data-copy, or the value/text of the element data-copy-target names. */
export function copyText(button: HTMLElement, doc: Document): string | null {
  if (button.dataset.copy !== undefined) return button.dataset.copy;
  const targetId = button.dataset.copyTarget;
  if (!targetId) return null;
  const target = doc.getElementById(targetId);
  if (target === null) return null;
  if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) return target.value;
  return target.textContent?.trim() ?? "";
}

function flashLabel(button: HTMLElement, label: string): void {
  const original = button.dataset.label ?? button.textContent ?? "";
  button.dataset.label = original;
  button.textContent = label;
  window.setTimeout(() => {
    button.textContent = original;
    delete button.dataset.label;
  }, FEEDBACK_MS);
}

/** Copy buttons: one delegated listener on the document, so buttons added later work too. */
export function bindCopyButtons(doc: Document, clipboard: Clipboard | undefined): void {
  doc.addEventListener("click", (event) => {
    const button = (event.target as Element | null)?.closest<HTMLElement>("[data-copy], [data-copy-target]");
    if (!button) return;
    event.preventDefault();
    const text = copyText(button, doc);
    if (text === null) return;
    if (!clipboard) {
      // Not a secure context (plain http on another host): leave the text for the user to copy by hand.
      flashLabel(button, "Select and copy");
      return;
    }
    clipboard.writeText(text).then(
      () => flashLabel(button, "Copied"),
      () => flashLabel(button, "Copy failed"),
    );
  });
}

/** Forms with data-confirm submit only after the user agrees; the submit button stays a real button. */
export function bindConfirmForms(doc: Document, confirm: Confirm): void {
  doc.addEventListener("submit", (event) => {
    const form = event.target as HTMLFormElement | null;
    const message = form?.dataset?.confirm;
    if (message && !confirm(message)) event.preventDefault();
  });
}
