/**
 * Student Records ("Drops in the Ocean", paper App. A.2): databases of one-line records,
 * one record per document, filled to a token length, with Recall / Relation / Aggregate
 * questions. Ids, names and (major, year) combinations are partitioned by split, so test
 * problems share none of them with training.
 */
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { DataInputError } from "./errors.ts";
import { deriveSeed, type Rng } from "./rng.ts";

export type Split = "train" | "validation" | "test";
export const SPLITS: readonly Split[] = ["train", "validation", "test"];
export type RecordTask = "recall" | "relation" | "aggregate";
export const RECORD_TASKS: readonly RecordTask[] = ["recall", "relation", "aggregate"];

export interface StudentRecord {
  readonly id: string;
  readonly name: string;
  readonly year: string;
  readonly school: string;
  readonly major: string;
  readonly grade: number;
}

export const YEARS = ["Freshman", "Sophomore", "Junior", "Senior"] as const;
export const MAJORS_BY_SCHOOL: Record<string, readonly string[]> = {
  "School of Arts and Humanities": [
    "History",
    "Economics",
    "Psychology",
    "Philosophy",
    "Comparative Literature",
    "Art History",
    "Music",
    "Linguistics",
  ],
  "School of Engineering": [
    "Civil Engineering",
    "Mechanical Engineering",
    "Electrical Engineering",
    "Biomedical Engineering",
    "Chemical Engineering",
  ],
  "School of Computer Information and Data Sciences": [
    "Computer Science",
    "Data Science",
    "Cybersecurity",
    "Information Systems",
    "Software Engineering",
  ],
};
const MAJORS = Object.entries(MAJORS_BY_SCHOOL).flatMap(([school, ms]) =>
  ms.map((major) => ({ school, major }))
);

const FIRST_NAMES = [
  "Alison",
  "Sarah",
  "Cathy",
  "Bryce",
  "Felicia",
  "Helen",
  "Jim",
  "David",
  "Frank",
  "Rhonda",
  "Brian",
  "Carrie",
  "Rebecca",
  "Jose",
  "Christina",
  "Terri",
  "Darlene",
  "Breanna",
  "Jeff",
  "Lucas",
  "Wesley",
  "Juan",
  "Karen",
  "Peter",
  "Matt",
  "Laura",
  "Kevin",
  "Monica",
  "Oscar",
  "Paula",
  "Quentin",
  "Rosa",
  "Steven",
  "Tina",
  "Victor",
  "Wendy",
  "Xavier",
  "Yolanda",
  "Zachary",
  "Angela",
  "Brandon",
  "Cynthia",
  "Derek",
  "Elena",
  "Fiona",
  "Gregory",
  "Hannah",
  "Ivan",
  "Julia",
  "Keith",
  "Linda",
  "Marcus",
  "Nora",
  "Owen",
  "Patricia",
  "Ricardo",
  "Sofia",
  "Trevor",
  "Ursula",
  "Vanessa",
];
const LAST_NAMES = [
  "Keith",
  "Stewart",
  "Duarte",
  "Stokes",
  "Hardy",
  "Johnson",
  "Humphrey",
  "Hays",
  "Gamble",
  "Thomas",
  "Estrada",
  "Bentley",
  "Mercer",
  "Cowan",
  "Erickson",
  "Sutton",
  "Garcia",
  "Sparks",
  "Graves",
  "Wilson",
  "Martin",
  "Butler",
  "Vega",
  "Andrade",
  "Harris",
  "Nguyen",
  "Patel",
  "Okafor",
  "Larsen",
  "Moreno",
  "Fischer",
  "Kowalski",
  "Tanaka",
  "Rossi",
  "Dubois",
  "Murphy",
  "Silva",
  "Novak",
  "Jensen",
  "Ortiz",
];

/** Split of a first name: names are disjoint across splits (every 5th → validation/test). */
function nameSplit(i: number): Split {
  return i % 5 === 3 ? "validation" : i % 5 === 4 ? "test" : "train";
}

/** Split of a (major, year) combination, by a fixed hash (stable across seeds). */
export function comboSplit(major: string, year: string): Split {
  const h = deriveSeed(0, "combo", major, year) % 10;
  return h < 7 ? "train" : h < 8 ? "validation" : "test";
}

const COMBOS: Record<Split, { school: string; major: string; year: string }[]> = {
  train: [],
  validation: [],
  test: [],
};
for (const m of MAJORS) {
  for (const year of YEARS) COMBOS[comboSplit(m.major, year)].push({ ...m, year });
}
const FIRSTS: Record<Split, string[]> = { train: [], validation: [], test: [] };
FIRST_NAMES.forEach((n, i) => FIRSTS[nameSplit(i)].push(n));

export function recordFirstNameSplit(name: string): Split | undefined {
  const i = FIRST_NAMES.indexOf(name.split(" ")[0]);
  return i < 0 ? undefined : nameSplit(i);
}

function randomId(rng: Rng, split: Split, used: Set<string>): string {
  const want = SPLITS.indexOf(split) === 0 ? [0, 1, 2] : split === "validation" ? [3] : [4];
  for (;;) {
    const base = 1_000_000 + rng.int(1_800_000) * 5; // multiples of 5, 7 digits
    const id = String(base + want[rng.int(want.length)]);
    if (!used.has(id)) {
      used.add(id);
      return id;
    }
  }
}

export function randomRecord(rng: Rng, split: Split, used: Set<string>): StudentRecord {
  const c = rng.pick(COMBOS[split]);
  return {
    id: randomId(rng, split, used),
    name: `${rng.pick(FIRSTS[split])} ${rng.pick(LAST_NAMES)}`,
    year: c.year,
    school: c.school,
    major: c.major,
    grade: rng.int(101),
  };
}

/** A record as the model sees it (one document). */
export function formatRecord(r: StudentRecord): string {
  return `Student <${r.id}>, Name: ${r.name}, Year: ${r.year}, School: ${r.school}, ` +
    `Major: ${r.major}, Grade: ${r.grade}`;
}

/**
 * Records until their tokens are within 0.5% of `targetTokens`; near the end, a fresh record
 * that would overshoot replaces a shorter one when that closes the gap without overshooting.
 */
export function fillRecords(
  tok: TextTokenizer,
  rng: Rng,
  split: Split,
  targetTokens: number,
): { records: StudentRecord[]; tokens: number } {
  const used = new Set<string>();
  const records: StudentRecord[] = [], lengths: number[] = [];
  let total = 0, misses = 0;
  const tolerance = Math.max(1, Math.floor(targetTokens * 0.005));
  while (targetTokens - total > tolerance && misses < 5000) {
    const r = randomRecord(rng, split, used);
    const n = tok.countTokens(formatRecord(r));
    if (total + n <= targetTokens) {
      records.push(r);
      lengths.push(n);
      total += n;
      continue;
    }
    // The gap is smaller than a record: swap a shorter record for this one if it fits.
    misses++;
    const i = rng.int(Math.max(1, records.length));
    if (records.length && n > lengths[i] && total - lengths[i] + n <= targetTokens) {
      total += n - lengths[i];
      records[i] = r;
      lengths[i] = n;
    }
  }
  if (records.length < 2) {
    throw new DataInputError(
      `student records: length ${targetTokens} tokens holds fewer than 2 records; use ≥ 1k`,
    );
  }
  return { records, tokens: total };
}

export interface RecordQuestion {
  readonly question: string;
  readonly answer: string;
  /** Records the answer depends on (all of them for aggregates). */
  readonly supportIds: string[];
  readonly kind: string;
}

/** A random question of `task` over `records`, answered from them. */
export function recordQuestion(
  task: RecordTask,
  records: StudentRecord[],
  rng: Rng,
): RecordQuestion {
  if (task === "recall") {
    const r = rng.pick(records);
    const kinds = [
      ["name", `What is the name of the student with ID ${r.id}?`, r.name],
      ["major", `What major is student with ID ${r.id} studying?`, r.major],
      ["grade", `What is the grade of the student with ID ${r.id}?`, String(r.grade)],
      ["year", `Which year is student with ID ${r.id} in?`, r.year],
      ["school", `Which school is the student with ID ${r.id} enrolled in?`, r.school],
    ] as const;
    const [kind, question, answer] = rng.pick(kinds);
    return { question, answer, supportIds: [r.id], kind };
  }
  if (task === "relation") {
    const kind = rng.pick(["grade", "major", "school", "year"] as const);
    const wantYes = rng.next() < 0.5;
    const same = (a: StudentRecord, b: StudentRecord) =>
      kind === "grade" ? a.grade > b.grade : a[kind] === b[kind];
    // Prefer a pair giving the wanted answer (balanced labels); grades must differ.
    let a = rng.pick(records), b = rng.pick(records);
    for (let t = 0; t < 500; t++) {
      a = rng.pick(records);
      b = rng.pick(records);
      if (a.id === b.id || (kind === "grade" && a.grade === b.grade)) continue;
      if (same(a, b) === wantYes) break;
    }
    if (a.id === b.id || (kind === "grade" && a.grade === b.grade)) {
      b = records.find((r) => r.id !== a.id && (kind !== "grade" || r.grade !== a.grade)) ?? b;
    }
    const question = {
      grade: `Does student ${a.id} has a higher grade than student ${b.id}?`,
      major: `Does student ${a.id} study the same major as student ${b.id}?`,
      school: `Are student ${a.id} and student ${b.id} enrolled in the same school?`,
      year: `Are student ${a.id} and student ${b.id} in the same year?`,
    }[kind];
    return { question, answer: same(a, b) ? "Yes" : "No", supportIds: [a.id, b.id], kind };
  }
  const kind = rng.pick(["max", "min", "average"] as const);
  const grades = records.map((r) => r.grade);
  const mean = grades.reduce((s, g) => s + g, 0) / grades.length;
  const [question, answer] = {
    max: ["What is the highest grade among all students?", String(Math.max(...grades))],
    min: ["What is the lowest grade among all students?", String(Math.min(...grades))],
    average: [
      "What is the average grade of all students?",
      (Math.round(mean * 10) / 10).toFixed(1),
    ],
  }[kind];
  return { question, answer, supportIds: records.map((r) => r.id), kind };
}
