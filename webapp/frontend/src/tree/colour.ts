// Colour scales for the rollout explorer, interpolated in OKLab (perceptually even steps):
// token entropy → a warm tint behind the text; leaf reward → red … neutral … green.

export type Theme = "light" | "dark";
type Rgb = [number, number, number];
type Lab = [number, number, number];

export function hexToRgb(hex: string): Rgb {
  const h = hex.replace("#", "");
  const full = h.length === 3 ? [...h].map((c) => c + c).join("") : h;
  return [0, 2, 4].map((i) => parseInt(full.slice(i, i + 2), 16)) as Rgb;
}

const toLinear = (c: number): number => {
  const s = c / 255;
  return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
};
const fromLinear = (l: number): number => {
  const s = l <= 0.0031308 ? 12.92 * l : 1.055 * l ** (1 / 2.4) - 0.055;
  return Math.round(Math.min(1, Math.max(0, s)) * 255);
};

/** sRGB (0–255) → OKLab (Björn Ottosson's matrices). */
export function rgbToOklab([r, g, b]: Rgb): Lab {
  const [lr, lg, lb] = [toLinear(r), toLinear(g), toLinear(b)];
  const l = Math.cbrt(0.4122214708 * lr + 0.5363325363 * lg + 0.0514459929 * lb);
  const m = Math.cbrt(0.2119034982 * lr + 0.6806995451 * lg + 0.1073969566 * lb);
  const s = Math.cbrt(0.0883024619 * lr + 0.2817188376 * lg + 0.6299787005 * lb);
  return [
    0.2104542553 * l + 0.793617785 * m - 0.0040720468 * s,
    1.9779984951 * l - 2.428592205 * m + 0.4505937099 * s,
    0.0259040371 * l + 0.7827717662 * m - 0.808675766 * s,
  ];
}

export function oklabToRgb([L, a, b]: Lab): Rgb {
  const l = (L + 0.3963377774 * a + 0.2158037573 * b) ** 3;
  const m = (L - 0.1055613458 * a - 0.0638541728 * b) ** 3;
  const s = (L - 0.0894841775 * a - 1.291485548 * b) ** 3;
  return [
    fromLinear(4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s),
    fromLinear(-1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s),
    fromLinear(-0.0041960863 * l - 0.7034186147 * m + 1.707614701 * s),
  ];
}

/** The colour a fraction t (0–1) along stops spaced evenly, mixed in OKLab, as a CSS rgb(). */
export function rampColour(stops: readonly string[], t: number): string {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2);
  const f = x - i;
  const a = rgbToOklab(hexToRgb(stops[i]));
  const b = rgbToOklab(hexToRgb(stops[i + 1]));
  const [r, g, bl] = oklabToRgb([a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f]);
  return `rgb(${r}, ${g}, ${bl})`;
}

// From the page's panel colour (no tint) to a saturated warm tone; text stays readable on every stop.
const ENTROPY_STOPS: Record<Theme, readonly string[]> = {
  light: ["#ffffff", "#fdf0c4", "#fbc679", "#f39a5b"],
  dark: ["#171b21", "#3d3215", "#6e4714", "#9a4a1c"],
};

const REWARD_STOPS: Record<Theme, readonly string[]> = {
  light: ["#dc2626", "#a8a29e", "#16a34a"],
  dark: ["#f87171", "#78716c", "#4ade80"],
};

/** A scale top for entropies: the 95th percentile of the present values (at least `floor` nats). */
export function entropyScaleMax(values: Iterable<number | null>, floor = 0.5): number {
  const present = [...values].filter((v): v is number => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  if (!present.length) return floor;
  return Math.max(floor, present[Math.min(present.length - 1, Math.floor(present.length * 0.95))]);
}

/** Background for a token of entropy `h` nats; null (tool result, or entropies thinned out) gets none. */
export function entropyTint(h: number | null, max: number, theme: Theme): string | null {
  if (h === null || !Number.isFinite(h)) return null;
  return rampColour(ENTROPY_STOPS[theme], max > 0 ? h / max : 0);
}

/** Leaf colour for a reward: −1 (invalid format) red, 0 neutral, ≥ 1 green. */
export function rewardColour(reward: number | null, theme: Theme): string {
  if (reward === null) return rampColour(REWARD_STOPS[theme], 0.5);
  return rampColour(REWARD_STOPS[theme], (Math.max(-1, Math.min(1, reward)) + 1) / 2);
}

/** ΔE in OKLab between two CSS rgb() or hex colours (for tests and contrast checks). */
export function oklabDistance(a: string, b: string): number {
  const parse = (c: string): Rgb => (c.startsWith("#") ? hexToRgb(c) : (c.match(/\d+/g)!.map(Number) as Rgb));
  const [p, q] = [rgbToOklab(parse(a)), rgbToOklab(parse(b))];
  return Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]);
}

export function lightness(colour: string): number {
  const rgb = colour.startsWith("#") ? hexToRgb(colour) : (colour.match(/\d+/g)!.map(Number) as Rgb);
  return rgbToOklab(rgb)[0];
}
