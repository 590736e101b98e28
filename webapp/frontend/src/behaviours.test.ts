// @vitest-environment happy-dom
import { beforeEach, describe, expect, it, vi } from "vitest";

import { bindConfirmForms, bindCopyButtons, copyText } from "./behaviours";

function freshDocument(html: string): Document {
  const doc = document.implementation.createHTMLDocument("test");
  doc.body.innerHTML = html;
  return doc;
}

describe("copyText", () => {
  it("takes the data-copy attribute first", () => {
    const doc = freshDocument(`<button data-copy="arpo_123">Copy</button>`);
    expect(copyText(doc.querySelector("button")!, doc)).toBe("arpo_123");
  });

  it("reads an input's value through data-copy-target", () => {
    const doc = freshDocument(`<input id="tok" value="secret-1"><button data-copy-target="tok">Copy</button>`);
    expect(copyText(doc.querySelector("button")!, doc)).toBe("secret-1");
  });

  it("reads an element's trimmed text through data-copy-target", () => {
    const doc = freshDocument(`<code id="cmd">  arpo login  </code><button data-copy-target="cmd">Copy</button>`);
    expect(copyText(doc.querySelector("button")!, doc)).toBe("arpo login");
  });

  it("gives null when the target does not exist", () => {
    const doc = freshDocument(`<button data-copy-target="missing">Copy</button>`);
    expect(copyText(doc.querySelector("button")!, doc)).toBeNull();
  });
});

describe("bindCopyButtons", () => {
  beforeEach(() => vi.useRealTimers());

  it("writes the text to the clipboard and says so on the button", async () => {
    const doc = freshDocument(`<button data-copy="arpo_123">Copy</button>`);
    const writeText = vi.fn(() => Promise.resolve());
    bindCopyButtons(doc, { writeText });
    const button = doc.querySelector("button")!;
    button.click();
    await Promise.resolve();
    await Promise.resolve();
    expect(writeText).toHaveBeenCalledWith("arpo_123");
    expect(button.textContent).toBe("Copied");
  });

  it("restores the label after a moment", async () => {
    vi.useFakeTimers();
    const doc = freshDocument(`<button data-copy="x">Copy token</button>`);
    bindCopyButtons(doc, { writeText: () => Promise.resolve() });
    const button = doc.querySelector("button")!;
    button.click();
    await vi.runAllTimersAsync();
    expect(button.textContent).toBe("Copy token");
  });
});

describe("bindConfirmForms", () => {
  it("stops the submit when the user declines", () => {
    const doc = freshDocument(`<form data-confirm="Delete it?"></form>`);
    const confirm = vi.fn(() => false);
    bindConfirmForms(doc, confirm);
    const event = new Event("submit", { cancelable: true, bubbles: true });
    doc.querySelector("form")!.dispatchEvent(event);
    expect(confirm).toHaveBeenCalledWith("Delete it?");
    expect(event.defaultPrevented).toBe(true);
  });

  it("lets the submit through when the user agrees", () => {
    const doc = freshDocument(`<form data-confirm="Delete it?"></form>`);
    bindConfirmForms(doc, () => true);
    const event = new Event("submit", { cancelable: true, bubbles: true });
    doc.querySelector("form")!.dispatchEvent(event);
    expect(event.defaultPrevented).toBe(false);
  });

  it("never asks for forms without data-confirm", () => {
    const doc = freshDocument(`<form></form>`);
    const confirm = vi.fn(() => false);
    bindConfirmForms(doc, confirm);
    const event = new Event("submit", { cancelable: true, bubbles: true });
    doc.querySelector("form")!.dispatchEvent(event);
    expect(confirm).not.toHaveBeenCalled();
    expect(event.defaultPrevented).toBe(false);
  });
});
