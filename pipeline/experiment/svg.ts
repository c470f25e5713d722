/**
 * Tiny SVG plotting (no browser, no dependencies): heatmaps and line charts, enough for the
 * paper's figures. Output is standalone SVG 1.1 text.
 */

/** Escape text for XML content and attribute values. */
export function xmlEscape(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

const f = (x: number) => Number(x.toFixed(2)).toString();

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

export interface HeatmapSpec {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
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
  const width = left + cols * cell + right, height = top + rows * cell + bottom;
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
}

export interface LineSpec {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  /** Log-2 x axis (context lengths). */
  readonly xLog?: boolean;
  /** Tick labels for x values (e.g. 8192 → "8k"). */
  readonly xTickLabel?: (x: number) => string;
  readonly yTickLabel?: (y: number) => string;
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"];

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
  const width = 560, height = 360, left = 80, right = 150, top = 44, bottom = 56;
  const pw = width - left - right, ph = height - top - bottom;
  const pts = spec.series.flatMap((s) => s.points).filter(([x, y]) =>
    Number.isFinite(x) && Number.isFinite(y) && (!spec.xLog || x > 0)
  );
  const tx = (x: number) => (spec.xLog ? Math.log2(x) : x);
  const xs = pts.map(([x]) => tx(x)), ys = pts.map(([, y]) => y);
  let x0 = Math.min(...xs, Infinity), x1 = Math.max(...xs, -Infinity);
  const y0 = Math.min(0, ...ys);
  let y1 = Math.max(...ys, -Infinity);
  if (!Number.isFinite(x0)) [x0, x1] = [0, 1];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (!Number.isFinite(y1) || y1 <= y0) y1 = y0 + 1;
  const sx = (x: number) => left + ((tx(x) - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => top + ph - ((y - y0) / (y1 - y0)) * ph;
  const body = [
    text(width / 2 - right / 2 + left / 2, 24, spec.title, { size: 15, weight: "bold" }),
  ];
  body.push(
    `<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`,
  );
  const yl = spec.yTickLabel ?? ((y: number) => String(y));
  for (const y of niceTicks(y0, y1)) {
    body.push(
      `<line x1="${left}" y1="${f(sy(y))}" x2="${left + pw}" y2="${f(sy(y))}" stroke="#e5e5e5"/>`,
    );
    body.push(text(left - 6, sy(y) + 4, yl(y), { anchor: "end", size: 11 }));
  }
  const xValues = spec.xLog
    ? [...new Set(pts.map(([x]) => x))].sort((a, b) => a - b)
    : niceTicks(x0, x1);
  const xl = spec.xTickLabel ?? ((x: number) => String(x));
  for (const x of xValues) body.push(text(sx(x), top + ph + 16, xl(x), { size: 11 }));
  spec.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const good = s.points.filter(([x, y]) =>
      Number.isFinite(x) && Number.isFinite(y) && (!spec.xLog || x > 0)
    ).slice().sort((a, b) => a[0] - b[0]);
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
