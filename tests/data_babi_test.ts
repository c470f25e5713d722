/** bAbI simulator (answers re-derived by an independent solver), reader, released-data stats. */
import assert from "node:assert/strict";
import {
  type BabiSample,
  type BabiTask,
  eventPrefixedFacts,
  generateBabiSamples,
} from "../pipeline/data/babi_world.ts";
import { parseBabi, readBabiFolder } from "../pipeline/data/babi_reader.ts";
import { sharedPath } from "./testing.ts";

/**
 * Answer a sample by re-reading its sentences (not the simulator's state): actor places,
 * object holders, and each object's trail of places.
 */
function solve(s: BabiSample): string {
  const at = new Map<string, string>();
  const holder = new Map<string, string | undefined>();
  const placeOf = new Map<string, string>();
  const trail = new Map<string, string[]>();
  const visit = (o: string, l: string) => {
    const t = trail.get(o) ?? [];
    if (t.at(-1) !== l) t.push(l);
    trail.set(o, t);
  };
  for (const f of s.facts) {
    const move = /^(\w+) (?:went|journeyed|travelled|moved|went back) to the (\w+)\.$/.exec(f);
    const get = /^(\w+) (?:picked up|got|grabbed|took) the (\w+)(?: there)?\.$/.exec(f);
    const drop = /^(\w+) (?:dropped|discarded|left|put down) the (\w+)(?: there)?\.$/.exec(f);
    if (move) {
      at.set(move[1], move[2]);
      for (const [o, h] of holder) if (h === move[1]) visit(o, move[2]);
    } else if (get) {
      holder.set(get[2], get[1]);
      visit(get[2], at.get(get[1])!);
    } else if (drop) {
      assert.equal(holder.get(drop[2]), drop[1], `drop without holding: ${f}`);
      holder.set(drop[2], undefined);
      placeOf.set(drop[2], at.get(drop[1])!);
    } else assert.fail(`unknown sentence form: ${f}`);
  }
  let m = /^Where is (\w+)\?$/.exec(s.question);
  if (m) return at.get(m[1])!;
  m = /^Where is the (\w+)\?$/.exec(s.question);
  if (m) {
    const h = holder.get(m[1]);
    return h ? at.get(h)! : placeOf.get(m[1])!;
  }
  m = /^Where was the (\w+) before the (\w+)\?$/.exec(s.question)!;
  const t = trail.get(m[1])!;
  assert.equal(t.filter((l) => l === m![2]).length, 1, `ambiguous question ${s.question}`);
  return t[t.indexOf(m[2]) - 1];
}

for (const task of ["qa1", "qa2", "qa3"] as BabiTask[]) {
  Deno.test(`babi simulator ${task}: answers match an independent solver`, () => {
    const samples = generateBabiSamples(task, 300, 11);
    assert.equal(samples.length, 300);
    for (const s of samples) {
      assert.equal(solve(s), s.answer, `${s.question}\n${s.facts.join("\n")}`);
      assert.equal(s.support.length, Number(task[2]));
      // The support names the answer's location or the entity asked about.
      const sup = s.support.map((i) => s.facts[i]).join(" ");
      assert.ok(sup.includes(s.answer), `support lacks answer: ${sup}`);
    }
  });
}

Deno.test("babi simulator is deterministic per seed and varies across seeds", () => {
  assert.deepEqual(generateBabiSamples("qa2", 20, 5), generateBabiSamples("qa2", 20, 5));
  assert.notDeepEqual(generateBabiSamples("qa2", 20, 5), generateBabiSamples("qa2", 20, 6));
});

Deno.test("eventPrefixedFacts counts each actor's facts from 0", () => {
  assert.deepEqual(
    eventPrefixedFacts(["John went to the office.", "Mary got the milk.", "John left the milk."]),
    [
      "John Event 0: John went to the office.",
      "Mary Event 0: Mary got the milk.",
      "John Event 1: John left the milk.",
    ],
  );
});

Deno.test("babi reader: parses stories, drops earlier questions, maps supporting lines", () => {
  const text = "1 Mary got the milk there.\n2 John moved to the bedroom.\n" +
    "3 Mary travelled to the hallway.\n4 Where is the milk? \thallway\t1 3\n" +
    "5 John went to the garden.\n6 Where is John?\tgarden\t5\n1 Sandra went to the office.\n";
  const s = parseBabi(text, "qa2");
  assert.equal(s.length, 2);
  assert.deepEqual(s[0].support, [0, 2]);
  assert.equal(s[1].facts.length, 4); // question lines are not facts
  assert.deepEqual(s[1].support, [3]);
  assert.throws(() => parseBabi("x y\n", "qa1", "f.txt"), /f\.txt:1: expected "N text"/);
  assert.throws(() => parseBabi("1 A.\n2 Q?\ta\t7\n", "qa1", "f.txt"), /line 7 is not a fact/);
});

Deno.test("simulator matches released bAbI: facts per question and support size within 15%", () => {
  const dir = sharedPath("data/babi/en");
  if (!dir) return;
  for (const task of ["qa1", "qa2", "qa3"] as BabiTask[]) {
    const released = readBabiFolder(dir, task, "test");
    assert.equal(released.length, 1000);
    // The solver itself is checked on released qa1/qa2 (released qa3 has questions whose
    // "before the L" is ambiguous, which ours never ask).
    if (task !== "qa3") {
      for (const s of released.slice(0, 300)) assert.equal(solve(s), s.answer, s.question);
    }
    const ours = generateBabiSamples(task, 2000, 3);
    const mean = (xs: BabiSample[], f: (s: BabiSample) => number) =>
      xs.reduce((a, s) => a + f(s), 0) / xs.length;
    for (
      const [what, f] of [
        ["facts/question", (s: BabiSample) => s.facts.length],
        ["supporting facts", (s: BabiSample) => s.support.length],
      ] as const
    ) {
      const a = mean(ours, f), b = mean(released, f);
      assert.ok(Math.abs(a - b) <= 0.15 * b, `${task} ${what}: ours ${a}, released ${b}`);
    }
  }
});
