// Loaded on every page (core/base.html, with defer): small behaviours shared by all pages.
import { bindConfirmForms, bindCopyButtons } from "./behaviours";

bindCopyButtons(document, navigator.clipboard);
bindConfirmForms(document, (message) => window.confirm(message));
document.documentElement.classList.add("js");
