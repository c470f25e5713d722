/** Reports: the CSV contract, Wilson intervals, Markdown tables, SVG figures. */
import assert from "node:assert/strict";
import { figuresFor } from "../pipeline/experiment/figures.ts";
import {
  CSV_HEADER,
  formatDuration,
  resultsCsv,
  resultsMarkdown,
  type SweptRow,
  wilson,
} from "../pipeline/experiment/report.ts";
import { heatmapSvg, lineChartSvg, niceTicks } from "../pipeline/experiment/svg.ts";

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
    "heatmap-perk.svg",
    "time-vs-length.svg",
    "memory-vs-length.svg",
    "curve-loss.svg",
  ]);
  const posRows = ["pre", "post"].flatMap((a) =>
    ["pre", "post"].map((b) => row({ sweep: { train_position: a, test_position: b } }))
  );
  assert.deepEqual(
    figuresFor(posRows, ["train_position", "test_position"], []).map((f) => f.file),
    [
      "positions-perk.svg",
    ],
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
  assert.deepEqual(fig.map((f) => f.file), ["memory-vs-truncation.svg"]);
  for (const f of fig) assertWellFormed(f.svg);
  const acc = figuresFor(
    [1, 4].map((a) => row({ sweep: { accumulation: a } })),
    ["accumulation"],
    [],
  );
  assert.deepEqual(acc.map((f) => f.file), [
    "memory-vs-accumulation.svg",
    "time-vs-accumulation.svg",
  ]);
});
