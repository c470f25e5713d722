/**
 * Tiny SVG plotting (no browser, no dependencies): heatmaps, line charts and grouped bar
 * charts with interval whiskers, enough for the paper's figures. Output is standalone SVG
 * 1.1 text. Nothing measures text here, so widths are estimated generously and the figure
 * grows to hold its title and legend rather than cutting them.
 */

/** Escape text for XML content and attribute values. */
export function xmlEscape(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

const f = (x: number) => Number(x.toFixed(2)).toString();

/** Estimated width of `s` at `size` px: 0.62 em a character errs wide for Helvetica. */
export function textWidth(s: string, size: number): number {
  return s.length * size * 0.62;
}

/** x of a centred title: over `centre` where it fits, pulled inside the figure otherwise. */
function titleX(centre: number, width: number, title: string): number {
  const half = textWidth(title, 15) / 2 + 10;
  return Math.max(half, Math.min(width - half, centre));
}

function text(
  x: number,
  y: number,
  s: string,
  { size = 12, anchor = "middle", rotate = 0, weight = "normal", fill = "#222" } = {},
): string {
  const transform = rotate ? ` transform="rotate(${rotate} ${f(x)} ${f(y)})"` : "";
  return `<text x="${f(x)}" y="${f(y)}" font-size="${size}" text-anchor="${anchor}" ` +
    `font-weight="${weight}" fill="${fill}"${transform}>${xmlEscape(s)}</text>`;
}

function svgDoc(width: number, height: number, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="white"/>`,
    ...body,
    "</svg>",
    "",
  ].join("\n");
}

/** A colour from white (0) to dark blue (1). */
export function heatColor(t: number): string {
  const u = Math.max(0, Math.min(1, t));
  const lerp = (a: number, b: number) => Math.round(a + (b - a) * u);
  return `rgb(${lerp(247, 8)},${lerp(251, 48)},${lerp(255, 107)})`;
}

/** What every chart has: a title and its two axes' labels. */
export interface ChartSpec {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
}

export interface HeatmapSpec extends ChartSpec {
  readonly xTicks: readonly string[];
  readonly yTicks: readonly string[];
  /** values[row][col]; row ↔ yTicks, col ↔ xTicks; NaN = no data. */
  readonly values: readonly (readonly number[])[];
  readonly min?: number;
  readonly max?: number;
  readonly format?: (v: number) => string;
}

/** A heatmap with the value written in each cell. */
export function heatmapSvg(spec: HeatmapSpec): string {
  const cell = 64, left = 110, top = 50, bottom = 60, right = 20;
  const cols = spec.xTicks.length, rows = spec.yTicks.length;
  const width = Math.max(left + cols * cell + right, textWidth(spec.title, 15) + 20);
  const height = top + rows * cell + bottom;
  const flat = spec.values.flat().filter(Number.isFinite);
  const lo = spec.min ?? Math.min(...flat, 0), hi = spec.max ?? Math.max(...flat, 1);
  const fmt = spec.format ?? ((v: number) => v.toFixed(2));
  const body = [text(width / 2, 24, spec.title, { size: 15, weight: "bold" })];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = spec.values[r]?.[c] ?? NaN;
      const x = left + c * cell, y = top + r * cell;
      const t = hi > lo ? (v - lo) / (hi - lo) : 0;
      body.push(
        `<rect x="${x}" y="${y}" width="${cell}" height="${cell}" ` +
          `fill="${Number.isFinite(v) ? heatColor(t) : "#eeeeee"}" stroke="white"/>`,
      );
      body.push(
        text(x + cell / 2, y + cell / 2 + 4, Number.isFinite(v) ? fmt(v) : "–", {
          fill: Number.isFinite(v) && t > 0.55 ? "white" : "#222",
        }),
      );
    }
  }
  spec.xTicks.forEach((s, c) =>
    body.push(text(left + c * cell + cell / 2, top + rows * cell + 18, s))
  );
  spec.yTicks.forEach((s, r) =>
    body.push(text(left - 8, top + r * cell + cell / 2 + 4, s, { anchor: "end" }))
  );
  body.push(text(left + (cols * cell) / 2, height - 14, spec.xLabel, { size: 13 }));
  body.push(text(18, top + (rows * cell) / 2, spec.yLabel, { size: 13, rotate: -90 }));
  return svgDoc(width, height, body);
}

export interface Series {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
  /** Default: the palette by the series' index. Methods pass `methodColor`. */
  readonly color?: string;
}

/** A chart of numbers on its y axis (lines, bars). */
export interface PlotSpec extends ChartSpec {
  /** Tick labels for y values (e.g. 0.5 → "50%"). */
  readonly yTickLabel?: (y: number) => string;
}

export interface LineSpec extends PlotSpec {
  readonly series: readonly Series[];
  /** Log-2 x axis (context lengths). */
  readonly xLog?: boolean;
  /** Log-10 y axis (learning rates); values ≤ 0 are left out. */
  readonly yLog?: boolean;
  /** Tick labels for x values (e.g. 8192 → "8k"). */
  readonly xTickLabel?: (x: number) => string;
}

const PALETTE = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

/** Methods with fixed colours (the palette's first ones, in this order). */
export const METHOD_ORDER = [
  "perk",
  "ft-icr",
  "prompt-only",
  "perk-no-encode",
  "perk-ttt",
  "context-mode",
];

/**
 * A method's colour, the same in every figure of every run: its place in METHOD_ORDER, else
 * a hash of its name into the rest of the palette (two such methods may share one).
 */
export function methodColor(name: string): string {
  const i = METHOD_ORDER.indexOf(name);
  if (i >= 0) return PALETTE[i];
  let h = 0;
  for (const ch of name) h = (h * 31 + (ch.codePointAt(0) ?? 0)) >>> 0;
  return PALETTE[METHOD_ORDER.length + (h % (PALETTE.length - METHOD_ORDER.length))];
}

/** Round tick steps: 1, 2 or 5 × 10^k, about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push(Number(t.toPrecision(12)));
  }
  return ticks;
}

/** A line chart with markers and a legend. */
export function lineChartSvg(spec: LineSpec): string {
  const left = 80, top = 44, bottom = 56, pw = 330;
  // The legend sits right of the plot: as wide as its longest name, as tall as its entries.
  const legendWidth = Math.max(0, ...spec.series.map((s) => textWidth(s.name, 11)));
  const right = Math.max(150, 38 + legendWidth + 12);
  const ph = Math.max(260, 10 + 18 * spec.series.length);
  const width = Math.ceil(Math.max(left + pw + right, textWidth(spec.title, 15) + 20));
  const height = top + ph + bottom;
  const usable = ([x, y]: readonly [number, number]) =>
    Number.isFinite(x) && Number.isFinite(y) && (!spec.xLog || x > 0) && (!spec.yLog || y > 0);
  const pts = spec.series.flatMap((s) => s.points).filter(usable);
  const tx = (x: number) => (spec.xLog ? Math.log2(x) : x);
  const ty = (y: number) => (spec.yLog ? Math.log10(y) : y);
  const xs = pts.map(([x]) => tx(x)), ys = pts.map(([, y]) => ty(y));
  let x0 = Math.min(...xs, Infinity), x1 = Math.max(...xs, -Infinity);
  let y0 = spec.yLog ? Math.min(...ys, Infinity) : Math.min(0, ...ys);
  let y1 = Math.max(...ys, -Infinity);
  if (!Number.isFinite(x0)) [x0, x1] = [0, 1];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (!Number.isFinite(y0)) y0 = 0;
  if (!Number.isFinite(y1) || y1 <= y0) y1 = y0 + 1;
  const sx = (x: number) => left + ((tx(x) - x0) / (x1 - x0)) * pw;
  const syT = (t: number) => top + ph - ((t - y0) / (y1 - y0)) * ph;
  const sy = (y: number) => syT(ty(y));
  const body = [
    text(titleX(left + pw / 2, width, spec.title), 24, spec.title, { size: 15, weight: "bold" }),
  ];
  body.push(
    `<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`,
  );
  const yl = spec.yTickLabel ??
    ((y: number) => (spec.yLog ? y.toExponential(1).replace(/\.0e/, "e") : String(y)));
  for (const t of niceTicks(y0, y1)) {
    const y = spec.yLog ? 10 ** t : t;
    body.push(
      `<line x1="${left}" y1="${f(syT(t))}" x2="${left + pw}" y2="${f(syT(t))}" stroke="#e5e5e5"/>`,
    );
    body.push(text(left - 6, syT(t) + 4, yl(y), { anchor: "end", size: 11 }));
  }
  const xValues = spec.xLog
    ? [...new Set(pts.map(([x]) => x))].sort((a, b) => a - b)
    : niceTicks(x0, x1);
  const xl = spec.xTickLabel ?? ((x: number) => String(x));
  for (const x of xValues) body.push(text(sx(x), top + ph + 16, xl(x), { size: 11 }));
  spec.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const good = s.points.filter(usable).slice().sort((a, b) => a[0] - b[0]);
    if (good.length > 1) {
      body.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2" points="${
          good.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(" ")
        }"/>`,
      );
    }
    if (good.length <= 40) {
      for (const [x, y] of good) {
        body.push(`<circle cx="${f(sx(x))}" cy="${f(sy(y))}" r="3" fill="${color}"/>`);
      }
    }
    const ly = top + 10 + i * 18;
    body.push(
      `<line x1="${left + pw + 12}" y1="${ly}" x2="${left + pw + 32}" y2="${ly}" ` +
        `stroke="${color}" stroke-width="2"/>`,
    );
    body.push(text(left + pw + 38, ly + 4, s.name, { anchor: "start", size: 11 }));
  });
  body.push(text(left + pw / 2, height - 14, spec.xLabel, { size: 13 }));
  body.push(text(18, top + ph / 2, spec.yLabel, { size: 13, rotate: -90 }));
  return svgDoc(width, height, body);
}

/** One bar: a value with an optional interval drawn as a whisker. */
export interface Bar {
  readonly name: string;
  readonly value: number;
  readonly low?: number;
  readonly high?: number;
  readonly color: string;
}

/** Bars side by side under one label, with an optional dashed reference line across them. */
export interface BarGroup {
  readonly label: string;
  /** A second label line (e.g. the sweep point). */
  readonly sublabel?: string;
  readonly bars: readonly Bar[];
  readonly reference?: number;
}

export interface BarSpec extends PlotSpec {
  readonly groups: readonly BarGroup[];
  /** Legend text of the dashed reference lines. */
  readonly referenceLabel?: string;
  /** The y axis runs from 0 to this (default 1: accuracies). */
  readonly yMax?: number;
}

/**
 * Grouped bars with whiskers (class "ci") and dashed reference lines (class "reference"),
 * the classes naming them for readers and tests. The legend lists each bar name once, in
 * its first bar's colour.
 */
export function barChartSvg(spec: BarSpec): string {
  const bar = 16, gap = 20, left = 80, top = 44, ph = 240;
  const sub = spec.groups.some((g) => g.sublabel);
  const bottom = 56 + (sub ? 14 : 0);
  const needed = spec.groups.map((g) =>
    Math.max(
      g.bars.length * bar,
      textWidth(g.label, 11),
      textWidth(g.sublabel ?? "", 10),
    ) + gap
  );
  const pw = Math.max(200, needed.reduce((a, b) => a + b, 0));
  // A few narrow groups share the minimum plot width evenly rather than crowd its left.
  const spare = (pw - needed.reduce((a, b) => a + b, 0)) / Math.max(1, needed.length);
  const widths = needed.map((w) => w + spare);
  const names = [...new Map(spec.groups.flatMap((g) => g.bars.map((b) => [b.name, b.color])))];
  const hasReference = spec.groups.some((g) => g.reference !== undefined);
  const legend = [...names.map(([n]) => n), ...(hasReference ? [spec.referenceLabel ?? ""] : [])];
  const right = 38 + Math.max(0, ...legend.map((s) => textWidth(s, 11))) + 12;
  const width = Math.ceil(Math.max(left + pw + right, textWidth(spec.title, 15) + 20));
  const height = Math.max(top + ph + bottom, top + 10 + 18 * legend.length + 10);
  const y1 = spec.yMax ?? 1;
  const sy = (y: number) => top + ph - (Math.max(0, Math.min(y1, y)) / y1) * ph;
  const body = [
    text(titleX(left + pw / 2, width, spec.title), 24, spec.title, { size: 15, weight: "bold" }),
  ];
  const yl = spec.yTickLabel ?? ((y: number) => String(y));
  for (const y of niceTicks(0, y1)) {
    body.push(
      `<line x1="${left}" y1="${f(sy(y))}" x2="${left + pw}" y2="${f(sy(y))}" stroke="#e5e5e5"/>`,
    );
    body.push(text(left - 6, sy(y) + 4, yl(y), { anchor: "end", size: 11 }));
  }
  let x = left;
  spec.groups.forEach((g, gi) => {
    const w = widths[gi], start = x + (w - g.bars.length * bar) / 2;
    g.bars.forEach((b, bi) => {
      const bx = start + bi * bar;
      if (Number.isFinite(b.value)) {
        body.push(
          `<rect x="${f(bx + 1)}" y="${f(sy(b.value))}" width="${bar - 2}" ` +
            `height="${f(sy(0) - sy(b.value))}" fill="${b.color}"/>`,
        );
      }
      if (b.low !== undefined && b.high !== undefined) {
        const cx = bx + bar / 2, lo = sy(b.low), hi = sy(b.high);
        body.push(
          `<path class="ci" d="M${f(cx)} ${f(lo)}V${f(hi)}M${f(cx - 4)} ${f(lo)}H${f(cx + 4)}` +
            `M${f(cx - 4)} ${f(hi)}H${f(cx + 4)}" stroke="#222" stroke-width="1.2" fill="none"/>`,
        );
      }
    });
    if (g.reference !== undefined) {
      body.push(
        `<line class="reference" x1="${f(x + 4)}" y1="${f(sy(g.reference))}" ` +
          `x2="${f(x + w - 4)}" y2="${f(sy(g.reference))}" stroke="#444" ` +
          `stroke-width="1.5" stroke-dasharray="5 3"/>`,
      );
    }
    body.push(text(x + w / 2, top + ph + 16, g.label, { size: 11 }));
    if (g.sublabel) body.push(text(x + w / 2, top + ph + 30, g.sublabel, { size: 10 }));
    x += w;
  });
  body.push(
    `<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`,
  );
  const lx = left + pw + 12;
  names.forEach(([name, color], i) => {
    const ly = top + 10 + i * 18;
    body.push(`<rect x="${lx}" y="${ly - 6}" width="20" height="12" fill="${color}"/>`);
    body.push(text(lx + 26, ly + 4, name, { anchor: "start", size: 11 }));
  });
  if (hasReference) {
    const ly = top + 10 + names.length * 18;
    body.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 20}" y2="${ly}" stroke="#444" ` +
        `stroke-width="1.5" stroke-dasharray="5 3"/>`,
    );
    body.push(text(lx + 26, ly + 4, spec.referenceLabel ?? "", { anchor: "start", size: 11 }));
  }
  body.push(text(left + pw / 2, height - 14, spec.xLabel, { size: 13 }));
  body.push(text(18, top + ph / 2, spec.yLabel, { size: 13, rotate: -90 }));
  return svgDoc(width, height, body);
}
