/**
 * The figures of a run, chosen by what the results vary: accuracy per method and cell with
 * 95% Wilson whiskers and the best constant answer's rate, the length-generalisation heatmap
 * (train × test length, paper Fig. 4), the positional-bias grid (train × test position,
 * Fig. 5), time and memory versus context length and accumulation steps (Fig. 6), memory
 * versus truncation (Fig. 8), and learning curves from the metric records.
 */
import { windowTokens } from "../data/lengths.ts";
import type { MetricRecord } from "./cache.ts";
import type { ConstantAnswer } from "./predictions.ts";
import { type SweptRow, wilson } from "./report.ts";
import { barChartSvg, heatmapSvg, lineChartSvg, methodColor, type Series } from "./svg.ts";

export interface Figure {
  readonly file: string;
  readonly svg: string;
}

const uniq = <T>(xs: readonly T[]) => [...new Set(xs)];
const mb = (b: number) => b / 1e6;
const tokenLabel = (t: number) => (t % 1024 === 0 ? `${t / 1024}k` : String(t));
const slug = (s: string) => s.replace(/[^a-z0-9-]+/gi, "-");

/** Pooled accuracy of rows (sum correct / sum n). */
function pooled(rows: readonly SweptRow[]): number {
  const n = rows.reduce((a, r) => a + r.n, 0);
  return n ? rows.reduce((a, r) => a + r.correct, 0) / n : NaN;
}

function grid(
  rows: readonly SweptRow[],
  rowOf: (r: SweptRow) => string,
  colOf: (r: SweptRow) => string,
  ys: readonly string[],
  xs: readonly string[],
): number[][] {
  return ys.map((y) => xs.map((x) => pooled(rows.filter((r) => rowOf(r) === y && colOf(r) === x))));
}

const byTokens = (a: string, b: string) => windowTokens(a) - windowTokens(b);

/**
 * Accuracy of every row as a bar, grouped by cell (task, train → test length, sweep point)
 * in the table's order, with a dashed line at the cell's best constant answer rate.
 */
function accuracyBars(
  rows: readonly SweptRow[],
  swept: readonly string[],
  constants: readonly ConstantAnswer[],
): Figure[] {
  if (!rows.length) return [];
  const cellOf = (r: SweptRow) =>
    JSON.stringify([r.task, r.train_length, r.test_length, ...swept.map((k) => r.sweep[k])]);
  const groups = uniq(rows.map(cellOf)).map((cell) => {
    const mine = rows.filter((r) => cellOf(r) === cell), first = mine[0];
    const constant = constants.find((c) =>
      c.task === first.task && c.test_length === first.test_length
    );
    return {
      label: `${first.task} ${first.train_length}→${first.test_length}`,
      sublabel: swept.length
        ? swept.map((k) => `${k}=${JSON.stringify(first.sweep[k])}`).join(" ")
        : undefined,
      bars: mine.map((r) => {
        const [low, high] = wilson(r.correct, r.n);
        return {
          name: r.method,
          value: r.n ? r.correct / r.n : NaN,
          low,
          high,
          color: methodColor(r.method),
        };
      }),
      reference: constant?.rate,
    };
  });
  return [{
    file: "accuracy.svg",
    svg: barChartSvg({
      title: "Accuracy (95% Wilson intervals)",
      xLabel: "task train → test length",
      yLabel: "accuracy",
      groups,
      referenceLabel: "best constant answer",
      yTickLabel: (y) => `${Math.round(100 * y)}%`,
    }),
  }];
}

function lengthHeatmaps(rows: readonly SweptRow[]): Figure[] {
  const trains = uniq(rows.map((r) => r.train_length)).sort(byTokens);
  const tests = uniq(rows.map((r) => r.test_length)).sort(byTokens);
  if (trains.length * tests.length < 2) return [];
  return uniq(rows.map((r) => r.method)).map((m) => ({
    file: `heatmap-${slug(m)}.svg`,
    svg: heatmapSvg({
      title: `${m}: accuracy by train × test length`,
      xLabel: "test length",
      yLabel: "train length",
      xTicks: tests,
      yTicks: trains,
      values: grid(
        rows.filter((r) => r.method === m),
        (r) => r.train_length,
        (r) => r.test_length,
        trains,
        tests,
      ),
      min: 0,
      max: 1,
    }),
  }));
}

function positionGrids(rows: readonly SweptRow[], swept: readonly string[]): Figure[] {
  if (!swept.includes("train_position") && !swept.includes("test_position")) return [];
  const pos = (r: SweptRow, k: string) => String(r.sweep[k] ?? "rnd");
  const order = ["pre", "mid", "post", "rnd"];
  const sortPos = (xs: string[]) => xs.sort((a, b) => order.indexOf(a) - order.indexOf(b));
  const ys = sortPos(uniq(rows.map((r) => pos(r, "train_position"))));
  const xs = sortPos(uniq(rows.map((r) => pos(r, "test_position"))));
  return uniq(rows.map((r) => r.method)).map((m) => ({
    file: `positions-${slug(m)}.svg`,
    svg: heatmapSvg({
      title: `${m}: accuracy by fact position`,
      xLabel: "test position",
      yLabel: "train position",
      xTicks: xs,
      yTicks: ys,
      values: grid(
        rows.filter((r) => r.method === m),
        (r) => pos(r, "train_position"),
        (r) => pos(r, "test_position"),
        ys,
        xs,
      ),
      min: 0,
      max: 1,
    }),
  }));
}

/** Mean of `y` per (method, x) as one series per method. */
function seriesBy(
  rows: readonly SweptRow[],
  x: (r: SweptRow) => number,
  y: (r: SweptRow) => number,
): Series[] {
  return uniq(rows.map((r) => r.method)).map((m) => {
    const mine = rows.filter((r) => r.method === m);
    return {
      name: m,
      color: methodColor(m),
      points: uniq(mine.map(x)).map((xv) => {
        const at = mine.filter((r) => x(r) === xv).map(y);
        return [xv, at.reduce((a, b) => a + b, 0) / at.length] as const;
      }),
    };
  });
}

function lengthLines(rows: readonly SweptRow[]): Figure[] {
  if (uniq(rows.map((r) => r.test_length)).length < 2) return [];
  const x = (r: SweptRow) => windowTokens(r.test_length);
  return [
    {
      file: "time-vs-length.svg",
      svg: lineChartSvg({
        title: "Time per problem vs context length",
        xLabel: "context length (tokens)",
        yLabel: "ms per problem",
        xLog: true,
        xTickLabel: tokenLabel,
        series: seriesBy(rows, x, (r) => r.ms_per_problem),
      }),
    },
    {
      file: "memory-vs-length.svg",
      svg: lineChartSvg({
        title: "Peak GPU memory vs context length",
        xLabel: "context length (tokens)",
        yLabel: "peak GPU MB",
        xLog: true,
        xTickLabel: tokenLabel,
        series: seriesBy(rows, x, (r) => mb(r.peak_bytes)),
      }),
    },
  ];
}

function sweptLines(
  rows: readonly SweptRow[],
  swept: readonly string[],
  metricsByPoint: ReadonlyMap<string, readonly MetricRecord[]>,
): Figure[] {
  const out: Figure[] = [];
  if (swept.includes("accumulation")) {
    const x = (r: SweptRow) => Number(r.sweep.accumulation);
    out.push({
      file: "memory-vs-accumulation.svg",
      svg: lineChartSvg({
        title: "Peak GPU memory vs accumulation steps",
        xLabel: "gradient accumulation steps",
        yLabel: "peak GPU MB",
        series: seriesBy(rows, x, (r) => mb(r.peak_bytes)),
      }),
    }, {
      file: "time-vs-accumulation.svg",
      svg: lineChartSvg({
        title: "Time per problem vs accumulation steps",
        xLabel: "gradient accumulation steps",
        yLabel: "ms per problem",
        series: seriesBy(rows, x, (r) => r.ms_per_problem),
      }),
    });
  }
  if (swept.includes("truncate")) {
    // Meta-training memory: the largest `train_peak_bytes` a stage reported for the point,
    // else the per-problem peak of the results.
    const trainPeak = (r: SweptRow) => {
      const ms = metricsByPoint.get(JSON.stringify(r.sweep)) ?? [];
      const peaks = ms.map((m) => Number(m.train_peak_bytes)).filter(Number.isFinite);
      return mb(peaks.length ? Math.max(...peaks) : r.peak_bytes);
    };
    out.push({
      file: "memory-vs-truncation.svg",
      svg: lineChartSvg({
        title: "Meta-training memory vs truncation",
        xLabel: "truncated inner steps",
        yLabel: "peak GPU MB",
        series: seriesBy(rows, (r) => Number(r.sweep.truncate), trainPeak),
      }),
    });
  }
  return out;
}

// Not learning curves: the x axis, costs (their own figures), and the trainers' bookkeeping
// (which epoch a step is in, how many problems it took).
const CURVE_SKIP = new Set([
  "step",
  "ms",
  "cached",
  "peak_bytes",
  "train_peak_bytes",
  "bytes",
  "epoch",
  "problems",
]);

/**
 * One chart per stage and numeric metric recorded against `step` (loss, valAccuracy, …): each
 * stage counts its own steps (pretraining, meta-training and fine-tuning never share an axis);
 * a series per node of the stage. Learned inner rates (`rates`: min, geometric mean, max over
 * the tensors) get their own chart per stage, on a log axis.
 */
function learningCurves(metrics: readonly MetricRecord[]): Figure[] {
  const stepped = metrics.filter((m) => typeof m.step === "number");
  const out: Figure[] = [];
  for (const stage of uniq(stepped.map((m) => String(m.stage ?? "")))) {
    const mine = stepped.filter((m) => String(m.stage ?? "") === stage);
    const keys = uniq(mine.map((m) => String(m.key ?? "")));
    const name = (k: string) => k || stage;
    const prefix = stage ? `curve-${slug(stage)}-` : "curve-";
    const fields = uniq(
      mine.flatMap((m) =>
        Object.keys(m).filter((k) => !CURVE_SKIP.has(k) && typeof m[k] === "number")
      ),
    ).sort();
    for (const fieldName of fields) {
      const withField = mine.filter((m) => typeof m[fieldName] === "number");
      if (withField.length < 2) continue;
      out.push({
        file: `${prefix}${slug(fieldName)}.svg`,
        svg: lineChartSvg({
          title: `${stage || "learning curve"}: ${fieldName}`,
          xLabel: `${stage || "training"} step`,
          yLabel: fieldName,
          series: keys.map((k) => ({
            name: name(k),
            points: withField.filter((m) => String(m.key ?? "") === k)
              .map((m) => [m.step as number, m[fieldName] as number] as const),
          })).filter((s) => s.points.length),
        }),
      });
    }
    const rated = mine.filter((m) => isRates(m.rates));
    if (rated.length >= 2) {
      out.push({
        file: `${prefix}inner-rates.svg`,
        svg: lineChartSvg({
          title: `${stage}: learned inner learning rates (min, geometric mean, max)`,
          xLabel: `${stage} step`,
          yLabel: "inner learning rate",
          yLog: true,
          series: keys.flatMap((k) =>
            (["min", "gmean", "max"] as const).map((q) => ({
              name: `${name(k)} ${q}`,
              points: rated.filter((m) => String(m.key ?? "") === k)
                .map((m) => [m.step as number, (m.rates as Rates)[q]] as const),
            }))
          ).filter((s) => s.points.length),
        }),
      });
    }
    const layered = mine.filter((m) =>
      Array.isArray(m.ratesByLayer) && m.ratesByLayer.every((x) => typeof x === "number")
    );
    if (layered.length >= 2) {
      const layers = Math.max(...layered.map((m) => (m.ratesByLayer as number[]).length));
      out.push({
        file: `${prefix}inner-rates-by-layer.svg`,
        svg: lineChartSvg({
          title: `${stage}: learned inner learning rates per layer (geometric mean)`,
          xLabel: `${stage} step`,
          yLabel: "inner learning rate",
          yLog: true,
          series: keys.flatMap((k) =>
            Array.from({ length: layers }, (_, l) => ({
              name: `${keys.length > 1 ? `${name(k)} ` : ""}layer ${l}`,
              points: layered.filter((m) => String(m.key ?? "") === k)
                .map((m) => [m.step as number, (m.ratesByLayer as number[])[l]] as const),
            }))
          ).filter((s) => s.points.length),
        }),
      });
    }
  }
  return out;
}

interface Rates {
  readonly min: number;
  readonly gmean: number;
  readonly max: number;
}
const isRates = (r: unknown): r is Rates =>
  !!r && typeof r === "object" &&
  ["min", "gmean", "max"].every((q) => typeof (r as Record<string, unknown>)[q] === "number");

/** Every figure the results call for. */
export function figuresFor(
  rows: readonly SweptRow[],
  swept: readonly string[],
  metrics: readonly MetricRecord[],
  metricsByPoint: ReadonlyMap<string, readonly MetricRecord[]> = new Map(),
  constants: readonly ConstantAnswer[] = [],
): Figure[] {
  return [
    ...accuracyBars(rows, swept, constants),
    ...lengthHeatmaps(rows),
    ...positionGrids(rows, swept),
    ...lengthLines(rows),
    ...sweptLines(rows, swept, metricsByPoint),
    ...learningCurves(metrics),
  ];
}
