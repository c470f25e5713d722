/**
 * Reports: the CSV contract, Wilson intervals, Markdown tables, predictions.jsonl, the best
 * constant answer, SVG figures.
 */
import assert from "node:assert/strict";
import { figuresFor } from "../pipeline/experiment/figures.ts";
import {
  constantAnswers,
  type PredictionRecord,
  predictionsJsonl,
} from "../pipeline/experiment/predictions.ts";
import {
  CSV_HEADER,
  formatDuration,
  resultsCsv,
  resultsMarkdown,
  type SweptRow,
  wilson,
} from "../pipeline/experiment/report.ts";
import { predictionColumns } from "./experiment_fixtures.ts";
import {
  heatmapSvg,
  lineChartSvg,
  methodColor,
  niceTicks,
  textWidth,
} from "../pipeline/experiment/svg.ts";

const row = (over: Partial<SweptRow>): SweptRow => ({
  method: "perk",
  task: "qa1",
  train_length: "1k",
  test_length: "1k",
  n: 200,
  correct: 180,
  ms_per_problem: 12.5,
  peak_bytes: 1_234_567,
  sweep: {},
  ...over,
});

Deno.test("experiment report: Wilson 95% interval matches known values", () => {
  const [lo, hi] = wilson(180, 200);
  // p = 0.9, n = 200: 0.85060 – 0.93433 (hand computation of the Wilson formula).
  assert.ok(Math.abs(lo - 0.85060) < 5e-5 && Math.abs(hi - 0.93433) < 5e-5, `${lo} ${hi}`);
  const [lo0, hi0] = wilson(0, 10);
  assert.equal(lo0, 0);
  assert.ok(Math.abs(hi0 - 0.2775) < 5e-4, String(hi0));
  const [lo1, hi1] = wilson(10, 10);
  assert.ok(Math.abs(lo1 - 0.7225) < 5e-4 && Math.abs(hi1 - 1) < 1e-12, `${lo1} ${hi1}`);
  assert.deepEqual(wilson(0, 0), [0, 1]);
});

Deno.test("experiment report: results.csv has exactly the contract header, then swept columns", () => {
  assert.equal(
    CSV_HEADER,
    "method,task,train_length,test_length,n,accuracy,ci_low,ci_high,ms_per_problem,peak_bytes",
  );
  const plain = resultsCsv([row({})], []).split("\n");
  assert.equal(plain[0], CSV_HEADER);
  assert.equal(plain[1], "perk,qa1,1k,1k,200,0.9,0.850594,0.93433,12.5,1234567");
  const swept = resultsCsv(
    [row({ sweep: { rank: 16, steps: 2 } }), row({ correct: 100, sweep: { rank: 256, steps: 2 } })],
    ["rank", "steps"],
  ).trim().split("\n");
  assert.equal(swept[0], `${CSV_HEADER},rank,steps`);
  assert.match(swept[1], /,16,2$/);
  assert.match(swept[2], /^perk,qa1,1k,1k,200,0\.5,.*,256,2$/);
});

Deno.test("experiment report: results.md has the main table and one table per swept parameter", () => {
  const rows = [
    row({ sweep: { rank: 16 } }),
    row({ correct: 150, sweep: { rank: 256 } }),
    row({ method: "ft-icr", correct: 100, sweep: { rank: 16 } }),
  ];
  const md = resultsMarkdown("t", rows, ["rank"], ["heatmap-perk.svg"], "a note");
  assert.match(md, /^# t\n/);
  assert.match(md, /\| method \| task \| train \| test \| rank \| accuracy % \| n \| 95% CI \|/);
  assert.match(
    md,
    /\| perk \| qa1 \| 1k \| 1k \| 16 \| 90\.0 \| 200 \| 85\.1–93\.4 \| 13 ms \| 1\.2 MB \|/,
  );
  assert.match(md, /## Sweep: rank\n\n\| rank \| perk @ 1k \| ft-icr @ 1k \|/);
  assert.match(md, /\| 256 \| 75\.0 \(n=200\) \| – \|/);
  assert.match(md, /a note/);
  assert.match(md, /!\[heatmap-perk\.svg\]\(heatmap-perk\.svg\)/);
});

Deno.test("experiment report: times per problem read in the unit that suits them", () => {
  assert.deepEqual(
    [12.5, 850, 12_345, 408_164, 9_000_000, NaN].map(formatDuration),
    ["13 ms", "850 ms", "12.3 s", "6.8 min", "2.5 h", "–"],
  );
});

/** A small XML well-formedness check: balanced tags, quoted attributes, one root. */
function assertWellFormed(svg: string) {
  assert.ok(svg.startsWith("<svg "), "starts with <svg");
  const stack: string[] = [];
  const tag = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<|>/g;
  let m: RegExpExecArray | null, roots = 0;
  const stripped = svg.replace(/>[^<]*</g, (s) => {
    assert.ok(!/[<>]/.test(s.slice(1, -1)), `raw < or > in text: ${s}`);
    return "><";
  });
  while ((m = tag.exec(stripped))) {
    if (m[0] === "<" || m[0] === ">") {
      assert.fail(`malformed markup near ${stripped.slice(m.index, m.index + 40)}`);
    }
    const [, close, name, , self] = m;
    if (close) assert.equal(stack.pop(), name, `closing </${name}>`);
    else if (!self) {
      if (stack.length === 0) roots++;
      stack.push(name);
    }
  }
  assert.deepEqual(stack, [], "every tag closed");
  assert.equal(roots, 1, "one root element");
}

Deno.test("experiment report: SVG heatmaps and line charts are well-formed", () => {
  const h = heatmapSvg({
    title: "perk <&> accuracy",
    xLabel: "test length",
    yLabel: "train length",
    xTicks: ["1k", "8k"],
    yTicks: ["1k"],
    values: [[0.9, NaN]],
    min: 0,
    max: 1,
  });
  assertWellFormed(h);
  assert.equal((h.match(/<rect /g) ?? []).length, 3); // background + 2 cells
  assert.match(h, /perk &lt;&amp;&gt; accuracy/);
  assert.match(h, />0\.90</);
  const l = lineChartSvg({
    title: "time",
    xLabel: "tokens",
    yLabel: "ms",
    xLog: true,
    series: [{ name: "perk", points: [[1024, 5], [8192, 40]] }, {
      name: "ft-icr",
      points: [[1024, 2]],
    }],
  });
  assertWellFormed(l);
  assert.match(l, /<polyline /);
  assert.equal((l.match(/<circle /g) ?? []).length, 3);
  assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
});

Deno.test("experiment report: figures follow what the results vary", () => {
  const lengthRows = ["1k", "2k"].flatMap((train) =>
    ["1k", "2k", "8k"].map((test) => row({ train_length: train, test_length: test }))
  );
  // As the trainers record them: bookkeeping (epoch, problems per step) is not a curve.
  const files = figuresFor(lengthRows, [], [
    { stage: "meta-train", key: "abc", step: 1, loss: 2, epoch: 0, problems: 4 },
    { stage: "meta-train", key: "abc", step: 2, loss: 1, epoch: 1, problems: 4 },
  ]).map((f) => f.file);
  assert.deepEqual(files, [
    "accuracy.svg",
    "heatmap-perk.svg",
    "time-vs-length.svg",
    "memory-vs-length.svg",
    "curve-meta-train-loss.svg",
  ]);
  // Each stage its own step axis; learned inner rates get their own chart (log axis).
  // A perk-meta-train point with its rates' (min, gmean, max) and per-layer rates.
  const rated = (step: number, loss: number, [min, gmean, max]: number[], byLayer: number[]) => ({
    stage: "perk-meta-train",
    key: "m",
    step,
    loss,
    rates: { min, gmean, max },
    ratesByLayer: byLayer,
  });
  const two = figuresFor([row({})], [], [
    { stage: "pretrain-base", key: "b", step: 1, loss: 5 },
    { stage: "pretrain-base", key: "b", step: 2, loss: 4 },
    rated(1, 1, [1e-3, 3e-3, 1e-2], [2e-3, 4e-3]),
    rated(2, 0.9, [9e-4, 3e-3, 2e-2], [1e-3, 8e-3]),
  ]);
  assert.deepEqual(two.map((f) => f.file), [
    "accuracy.svg",
    "curve-pretrain-base-loss.svg",
    "curve-perk-meta-train-loss.svg",
    "curve-perk-meta-train-inner-rates.svg",
    "curve-perk-meta-train-inner-rates-by-layer.svg",
  ]);
  assert.match(two.at(-1)!.svg, /layer 1/);
  const rates = two.at(-2)!.svg;
  assert.match(rates, /m gmean/);
  assert.match(rates, />1e-2</);
  const posRows = ["pre", "post"].flatMap((a) =>
    ["pre", "post"].map((b) => row({ sweep: { train_position: a, test_position: b } }))
  );
  assert.deepEqual(
    figuresFor(posRows, ["train_position", "test_position"], []).map((f) => f.file),
    ["accuracy.svg", "positions-perk.svg"],
  );
  const truncRows = [0, 1, 2].map((t) => row({ sweep: { truncate: t } }));
  const fig = figuresFor(
    truncRows,
    ["truncate"],
    [],
    new Map([[
      JSON.stringify({ truncate: 0 }),
      [{ train_peak_bytes: 5e6 }],
    ]]),
  );
  assert.deepEqual(fig.map((f) => f.file), ["accuracy.svg", "memory-vs-truncation.svg"]);
  for (const f of fig) assertWellFormed(f.svg);
  const acc = figuresFor(
    [1, 4].map((a) => row({ sweep: { accumulation: a } })),
    ["accumulation"],
    [],
  );
  assert.deepEqual(acc.map((f) => f.file), [
    "accuracy.svg",
    "memory-vs-accumulation.svg",
    "time-vs-accumulation.svg",
  ]);
});

/** A scored prediction of an unswept run; `rec` changes some of its fields. */
const REC: PredictionRecord = {
  method: "perk",
  task: "qa2",
  train_length: "1k",
  test_length: "8k",
  id: "p0",
  question: "Where is the apple?",
  target: "hallway",
  prediction: "<output>hallway</output>",
  correct: 1,
  ms: 5,
};
const rec = (over: Partial<PredictionRecord>): PredictionRecord => ({ ...REC, ...over });

Deno.test("experiment report: predictions.jsonl has the scored fields in order, sweep only when swept", () => {
  const text = predictionsJsonl([
    rec({}),
    rec({ method: "ft-icr", prediction: "", correct: 0, sweep: { rank: 16 } }),
  ]);
  assert.ok(text.endsWith("}\n"));
  const [plain, swept] = text.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(plain, REC);
  assert.deepEqual(Object.keys(plain), predictionColumns(false));
  assert.deepEqual(swept.sweep, { rank: 16 });
  assert.deepEqual([swept.method, swept.prediction, swept.correct], ["ft-icr", "", 0]);
});

Deno.test("experiment report: the best constant answer counts each test problem once", () => {
  // qa2 @ 8k: answers hallway ×2, garden ×2, office ×1 over 5 problems, seen by two methods
  // (and two train lengths for perk); qa2 @ 1k: a tie broken alphabetically.
  const answers8k = ["hallway", " garden", "office", "garden", "hallway "];
  const records = [
    ...["perk", "ft-icr"].flatMap((method) =>
      answers8k.map((target, i) => rec({ method, id: `8k-${i}`, target }))
    ),
    ...answers8k.map((target, i) => rec({ train_length: "2k", id: `8k-${i}`, target })),
    ...["office", "bedroom"].map((target, i) => rec({ test_length: "1k", id: `1k-${i}`, target })),
  ];
  assert.deepEqual(constantAnswers(records), [
    { task: "qa2", test_length: "8k", answer: "garden", count: 2, n: 5, rate: 0.4 },
    { task: "qa2", test_length: "1k", answer: "bedroom", count: 1, n: 2, rate: 0.5 },
  ]);
});

Deno.test("experiment report: results.md names the constant answer, the empty share and samples", () => {
  const targets = ["hallway", "hallway", "garden", "hallway"];
  const preds = [
    "<output>hallway</output>",
    "  \n",
    "a | b\nc",
    "x".repeat(200) + "<output>end</output>",
  ];
  const records = [
    ...targets.map((target, i) =>
      rec({ id: `p${i}`, target, prediction: preds[i], correct: i === 0 ? 1 : 0 })
    ),
    ...targets.map((target, i) =>
      rec({ method: "ft-icr", id: `p${i}`, target, prediction: target, correct: 1 })
    ),
  ];
  const rows = [
    row({ task: "qa2", test_length: "8k", n: 4, correct: 1 }),
    row({
      method: "ft-icr",
      task: "qa2",
      test_length: "8k",
      n: 4,
      correct: 4,
    }),
  ];
  const md = resultsMarkdown("t", rows, [], [], "", records);
  // The main table keeps its columns.
  assert.match(md, /\| method \| task \| train \| test \| accuracy % \| n \| 95% CI \|/);
  assert.match(
    md,
    /\| task \| test \| best constant answer \|\n\|---\|---\|---\|\n\| qa2 \| 8k \| hallway 75\.0% \(n = 4\) \|\n/,
  );
  const perk = md.split("### perk")[1].split("### ft-icr")[0];
  const ftIcr = md.split("### ft-icr")[1];
  assert.match(perk, /^\n\nempty predictions: 25\.0% \(1 of 4\)\n/);
  assert.match(ftIcr, /^\n\nempty predictions: 0\.0% \(0 of 4\)\n/);
  const sampleLines = (s: string) => s.split("\n").filter((l) => /^\| p\d /.test(l));
  assert.deepEqual(sampleLines(perk), [
    "| p0 | `hallway` | `<output>hallway</output>` | 1 |",
    "| p1 | `hallway` | (empty) | 0 |",
    "| p2 | `garden` | `a \\| b ⏎ c` | 0 |",
  ]);
  assert.deepEqual(sampleLines(ftIcr).map((l) => l.split(" | ")[2]), [
    "`hallway`",
    "`hallway`",
    "`garden`",
  ]);
  // Without records (e.g. older callers) the extra sections are left out.
  assert.doesNotMatch(resultsMarkdown("t", rows, []), /best constant answer|## Predictions/);
  // A long prediction keeps its end, where the answer is.
  const long = resultsMarkdown("t", rows, [], [], "", [rec({ prediction: preds[3] })]);
  assert.match(long, /\| `x{40}…x+<output>end<\/output>` \|/);
});

/** Every unrotated text's estimated extent lies inside the figure's width. */
function assertTextFits(svg: string) {
  const width = Number(/<svg [^>]*width="([\d.]+)"/.exec(svg)?.[1]);
  const texts = [
    ...svg.matchAll(
      /<text x="([\d.-]+)" [^>]*font-size="(\d+)" text-anchor="(\w+)"[^>]*>([^<]*)<\/text>/g,
    ),
  ];
  assert.ok(texts.length > 0);
  for (const [el, x, size, anchor, content] of texts) {
    if (el.includes("rotate(")) continue;
    const w = textWidth(content.replaceAll(/&\w+;/g, "&"), Number(size));
    const from = anchor === "start"
      ? Number(x)
      : anchor === "end"
      ? Number(x) - w
      : Number(x) - w / 2;
    assert.ok(from >= 0 && from + w <= width, `"${content}" spans ${from}–${from + w} of ${width}`);
  }
}

Deno.test("experiment report: accuracy figure has Wilson whiskers, constant lines and stable colours", () => {
  const long = "perk-with-a-rather-long-ablation-name";
  const rows = [
    row({ method: "ft-icr", task: "qa2", test_length: "8k", n: 40, correct: 9 }),
    row({ method: "perk", task: "qa2", test_length: "8k", n: 40, correct: 30 }),
    row({ method: long, task: "qa2", test_length: "8k", n: 40, correct: 0 }),
    row({ method: "perk", task: "qa2", test_length: "1k", n: 40, correct: 40 }),
  ];
  const constants = [
    { task: "qa2", test_length: "8k", answer: "hallway", count: 9, n: 40, rate: 0.225 },
    { task: "qa2", test_length: "1k", answer: "garden", count: 20, n: 40, rate: 0.5 },
  ];
  const figs = figuresFor(rows, [], [], new Map(), constants);
  assert.equal(figs[0].file, "accuracy.svg");
  const svg = figs[0].svg;
  assertWellFormed(svg);
  assertTextFits(svg);
  // Plot: y = 44 + 240 × (1 − value). One whisker per row, from its Wilson low to high.
  const sy = (v: number) => Number((44 + 240 * (1 - v)).toFixed(2));
  const whiskers = [...svg.matchAll(/<path class="ci" d="M[\d.]+ ([\d.]+)V([\d.]+)/g)]
    .map((m) => [Number(m[1]), Number(m[2])]);
  assert.deepEqual(whiskers, rows.map((r) => wilson(r.correct, r.n).map(sy)));
  // One dashed constant line per cell (two cells), at 22.5% and 50%.
  const refs = [...svg.matchAll(/<line class="reference" [^>]*y1="([\d.]+)"[^>]*stroke-dasharray/g)]
    .map((m) => Number(m[1]));
  assert.deepEqual(refs, [sy(0.225), sy(0.5)]);
  assert.match(svg, />best constant answer</);
  // Colours by name: the listed methods' fixed ones, in every figure, whatever the order.
  const bars = [...svg.matchAll(/<rect x="[\d.]+" y="[\d.]+" width="14" [^>]*fill="(#\w+)"/g)]
    .map((m) => m[1]);
  assert.deepEqual(bars, [
    methodColor("ft-icr"),
    methodColor("perk"),
    methodColor(long),
    methodColor("perk"),
  ]);
  assert.deepEqual(["perk", "ft-icr", "prompt-only"].map(methodColor), [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
  ]);
  assert.ok(!["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"].includes(methodColor(long)));
  const time = figuresFor(
    [...rows].reverse().map((r) => ({
      ...r,
      test_length: r.method === "perk" ? r.test_length : "1k",
    })),
    [],
    [],
  ).find((f) => f.file === "time-vs-length.svg");
  assert.ok(time);
  assertTextFits(time.svg);
  assert.match(time.svg, new RegExp(`<polyline fill="none" stroke="${methodColor("perk")}"`));
  assert.match(
    time.svg,
    new RegExp(`stroke="${methodColor("ft-icr")}" stroke-width="2"/>\n<text [^>]*>ft-icr<`),
  );
});
