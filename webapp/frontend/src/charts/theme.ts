// Light or dark, from the page (data-theme on <html> wins, else the system), and chart colours for each.
import type { Theme } from "../tree/colour";

export function currentTheme(doc: Document = document): Theme {
  const forced = doc.documentElement.dataset.theme;
  if (forced === "light" || forced === "dark") return forced;
  return doc.defaultView?.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

/** Call `fn` whenever the theme changes (system setting or data-theme); returns the unsubscribe. */
export function onThemeChange(fn: (theme: Theme) => void, doc: Document = document): () => void {
  const media = doc.defaultView?.matchMedia?.("(prefers-color-scheme: dark)");
  const handler = () => fn(currentTheme(doc));
  media?.addEventListener("change", handler);
  const observer = new MutationObserver(handler);
  observer.observe(doc.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  return () => {
    media?.removeEventListener("change", handler);
    observer.disconnect();
  };
}

// Categorical colours that stay apart for common colour-vision deficiencies (after Okabe–Ito / Tableau).
const SERIES: Record<Theme, readonly string[]> = {
  light: ["#4f46e5", "#d97706", "#0d9488", "#db2777", "#2563eb", "#65a30d", "#7c3aed", "#b45309"],
  dark: ["#a5a6fb", "#fbbf24", "#2dd4bf", "#f472b6", "#60a5fa", "#a3e635", "#c4b5fd", "#fdba74"],
};

export interface ChartColours {
  series: readonly string[];
  axis: string;
  grid: string;
  text: string;
}

export function chartColours(theme: Theme): ChartColours {
  return theme === "dark"
    ? { series: SERIES.dark, axis: "#9aa4b0", grid: "rgba(255,255,255,0.07)", text: "#e6e9ee" }
    : { series: SERIES.light, axis: "#5b6570", grid: "rgba(16,24,40,0.07)", text: "#1b1f24" };
}

/** The colour with an alpha (for the faint raw line under a smoothed one). */
export function withAlpha(hex: string, alpha: number): string {
  const h = hex.replace("#", "");
  const [r, g, b] = [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}
