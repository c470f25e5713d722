/** Student Records: format, answers re-derived from the context text, split disjointness. */
import assert from "node:assert/strict";
import { generateProblems, type Problem } from "../pipeline/data/problems.ts";
import {
  comboSplit,
  formatRecord,
  recordFirstNameSplit,
  type RecordTask,
  type Split,
} from "../pipeline/data/student_records.ts";
import { gpt2Tokenizer } from "../pipeline/tokenizer/gpt2.ts";

const tok = gpt2Tokenizer();
const RECORD =
  /^Document (\d+): Student <(\d{7})>, Name: (.+), Year: (\w+), School: (.+), Major: (.+), Grade: (\d+)$/;

interface Row {
  id: string;
  name: string;
  year: string;
  school: string;
  major: string;
  grade: number;
}

function rows(p: Problem): Row[] {
  return p.context.map((c, i) => {
    const m = RECORD.exec(c);
    assert.ok(m, `not a record: ${c}`);
    assert.equal(Number(m[1]), i);
    return { id: m[2], name: m[3], year: m[4], school: m[5], major: m[6], grade: Number(m[7]) };
  });
}

/** Answer from the rows (independent of the generator's bookkeeping). */
function solve(p: Problem, rs: Row[]): string {
  const by = new Map(rs.map((r) => [r.id, r]));
  const q = p.question;
  let m = /ID (\d{7})/.exec(q);
  if (p.task === "recall" && m) {
    const r = by.get(m[1])!;
    if (q.includes("name")) return r.name;
    if (q.includes("major")) return r.major;
    if (q.includes("grade")) return String(r.grade);
    if (q.includes("year")) return r.year;
    return r.school;
  }
  m = /student (\d{7}).* student (\d{7})/.exec(q);
  if (p.task === "relation" && m) {
    const a = by.get(m[1])!, b = by.get(m[2])!;
    const yes = q.includes("higher grade")
      ? a.grade > b.grade
      : q.includes("major")
      ? a.major === b.major
      : q.includes("school")
      ? a.school === b.school
      : a.year === b.year;
    return yes ? "Yes" : "No";
  }
  const g = rs.map((r) => r.grade);
  if (q.includes("highest")) return String(Math.max(...g));
  if (q.includes("lowest")) return String(Math.min(...g));
  return (g.reduce((a, b) => a + b, 0) / g.length).toFixed(1);
}

for (const task of ["recall", "relation", "aggregate"] as RecordTask[]) {
  Deno.test(`student records ${task}: answers follow from the context; length within 1%`, () => {
    const ps = generateProblems({
      dataset: "student-records",
      task,
      length: "2k",
      split: "test",
      n: task === "relation" ? 40 : 12,
      seed: 2,
    }, tok);
    let yes = 0;
    for (const p of ps) {
      const rs = rows(p);
      assert.equal(new Set(rs.map((r) => r.id)).size, rs.length, "ids unique per context");
      assert.equal(solve(p, rs), p.answer, p.question);
      assert.equal(p.target, p.answer, "Student Records targets are answer-only");
      const real = rs.reduce(
        (n, _, i) => n + tok.countTokens(p.context[i].replace(/^Document \d+: /, "")),
        0,
      );
      assert.equal(real, p.contextTokens);
      assert.ok(Math.abs(real - 2048) <= 20, `${real} tokens`);
      if (task !== "aggregate") {
        assert.deepEqual(
          p.support,
          p.supportSegments.map((i) => p.context[i].replace(/^Document \d+: /, "")),
        );
      }
      if (p.answer === "Yes") yes++;
    }
    if (task === "relation") assert.ok(yes >= 10 && yes <= 30, `${yes}/40 Yes answers`);
  });
}

Deno.test("student records: ids, names and (major, year) combinations disjoint across splits", () => {
  const seen = {
    ids: new Map<string, Split>(),
    firsts: new Map<string, Split>(),
    combos: new Map<string, Split>(),
  };
  for (const split of ["train", "validation", "test"] as Split[]) {
    for (
      const p of generateProblems({
        dataset: "student-records",
        task: "recall",
        length: "1k",
        split,
        n: 6,
        seed: 1,
      }, tok)
    ) {
      for (const r of rows(p)) {
        const first = r.name.split(" ")[0];
        for (
          const [m, k] of [[seen.ids, r.id], [seen.firsts, first], [
            seen.combos,
            `${r.major}|${r.year}`,
          ]] as const
        ) {
          assert.ok((m.get(k) ?? split) === split, `${k} in ${m.get(k)} and ${split}`);
          m.set(k, split);
        }
        assert.equal(recordFirstNameSplit(r.name), split);
        assert.equal(comboSplit(r.major, r.year), split);
      }
    }
  }
});

Deno.test("student records: format and position of the asked record", () => {
  assert.equal(
    formatRecord({
      id: "3109998",
      name: "Alison Keith",
      year: "Sophomore",
      school: "School of Engineering",
      major: "Civil Engineering",
      grade: 72,
    }),
    "Student <3109998>, Name: Alison Keith, Year: Sophomore, School: School of Engineering, Major: Civil Engineering, Grade: 72",
  );
  for (const position of ["pre", "post"] as const) {
    const ps = generateProblems({
      dataset: "student-records",
      task: "recall",
      length: "4k",
      split: "train",
      n: 5,
      seed: 3,
      position,
    }, tok);
    for (const p of ps) {
      const frac = p.supportSegments[0] / p.context.length;
      assert.ok(position === "pre" ? frac <= 0.34 : frac >= 0.66, `${position}: ${frac}`);
    }
  }
});
