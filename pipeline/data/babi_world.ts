/**
 * A simulator of the bAbI world (Weston et al. 2015; tasks 1–3) that writes stories in the
 * released sentence forms. Answers and supporting facts are read off the simulated state,
 * so they are right by construction. A sample = every fact of a story up to one question
 * (BabiLong's unit), with the indices of the supporting facts.
 */
import { type Rng, seededRng } from "./rng.ts";

export type BabiTask = "qa1" | "qa2" | "qa3";
export const BABI_TASKS: readonly BabiTask[] = ["qa1", "qa2", "qa3"];

export const ACTORS = ["John", "Mary", "Sandra", "Daniel"] as const;
export const LOCATIONS = ["bedroom", "kitchen", "garden", "hallway", "bathroom", "office"] as const;
export const OBJECTS = ["apple", "football", "milk"] as const;

export const MOVE_VERBS = ["went to", "journeyed to", "travelled to", "moved to", "went back to"];
export const GET_VERBS = ["picked up", "got", "grabbed", "took"];
export const DROP_VERBS = ["dropped", "discarded", "left", "put down"];

/** One question over a story prefix. `support` indexes `facts` (ascending). */
export interface BabiSample {
  readonly task: BabiTask;
  readonly facts: string[];
  readonly question: string;
  readonly answer: string;
  readonly support: number[];
}

/** Where an object was, and the move fact that established it. */
interface TrailStep {
  loc: string;
  moveFact: number;
}

interface ObjectState {
  hiddenLoc: string; // where it lies before any fact mentions it
  holder?: string;
  droppedAt?: string;
  dropMoveFact?: number; // the dropper's move that put them (and the object) there
  lastInteraction?: number; // last get/drop fact
  trail: TrailStep[];
}

/** Per-task story shape, tuned so facts per question match the released data (see test). */
const ASK_PROBABILITY: Record<BabiTask, number> = { qa1: 1, qa2: 0.7, qa3: 0.17 };
const QUESTIONS_PER_STORY = 5;
const MAX_FACTS_PER_STORY = 400;

class World {
  readonly facts: string[] = [];
  private readonly actorLoc = new Map<string, string>();
  private readonly actorMove = new Map<string, number>();
  private readonly objects = new Map<string, ObjectState>();

  constructor(private readonly rng: Rng, private readonly task: BabiTask) {
    for (const o of OBJECTS) this.objects.set(o, { hiddenLoc: rng.pick(LOCATIONS), trail: [] });
  }

  /** Add one valid random fact. */
  step(): void {
    const rng = this.rng;
    const gets: [string, string][] = [], drops: [string, string][] = [];
    if (this.task !== "qa1") {
      for (const a of ACTORS) {
        const loc = this.actorLoc.get(a);
        if (loc === undefined) continue;
        for (const [o, s] of this.objects) {
          if (s.holder === a) drops.push([a, o]);
          else if (s.holder === undefined && (s.droppedAt ?? s.hiddenLoc) === loc) {
            gets.push([a, o]);
          }
        }
      }
    }
    // Released qa2/qa3: ≈ 64% moves, 19% gets, 17% drops.
    const r = rng.next();
    if (gets.length && r < 0.19) this.get(...rng.pick(gets));
    else if (drops.length && r >= 0.19 && r < 0.36) this.drop(...rng.pick(drops));
    else this.move(rng.pick(ACTORS));
  }

  private move(actor: string): void {
    const here = this.actorLoc.get(actor);
    const dest = this.rng.pick(LOCATIONS.filter((l) => l !== here));
    const idx = this.facts.push(`${actor} ${this.rng.pick(MOVE_VERBS)} the ${dest}.`) - 1;
    this.actorLoc.set(actor, dest);
    this.actorMove.set(actor, idx);
    for (const s of this.objects.values()) {
      if (s.holder === actor) s.trail.push({ loc: dest, moveFact: idx });
    }
  }

  private get(actor: string, object: string): void {
    const there = this.rng.next() < 0.3 ? " there" : "";
    const idx = this.facts.push(`${actor} ${this.rng.pick(GET_VERBS)} the ${object}${there}.`) - 1;
    const s = this.objects.get(object)!;
    const loc = this.actorLoc.get(actor)!;
    s.holder = actor;
    s.droppedAt = undefined;
    s.lastInteraction = idx;
    if (s.trail.at(-1)?.loc !== loc) s.trail.push({ loc, moveFact: this.actorMove.get(actor)! });
  }

  private drop(actor: string, object: string): void {
    const there = this.rng.next() < 0.2 ? " there" : "";
    const idx = this.facts.push(`${actor} ${this.rng.pick(DROP_VERBS)} the ${object}${there}.`) -
      1;
    const s = this.objects.get(object)!;
    s.holder = undefined;
    s.droppedAt = this.actorLoc.get(actor)!;
    s.dropMoveFact = this.actorMove.get(actor)!;
    s.lastInteraction = idx;
  }

  /** A random question answerable from the facts so far, or undefined. */
  question(): Omit<BabiSample, "task" | "facts"> | undefined {
    const rng = this.rng;
    if (this.task === "qa1") {
      const known = ACTORS.filter((a) => this.actorLoc.has(a));
      if (!known.length) return undefined;
      const a = rng.pick(known);
      return {
        question: `Where is ${a}?`,
        answer: this.actorLoc.get(a)!,
        support: [this.actorMove.get(a)!],
      };
    }
    const touched = [...this.objects].filter(([, s]) => s.lastInteraction !== undefined);
    if (this.task === "qa2") {
      if (!touched.length) return undefined;
      const [o, s] = rng.pick(touched);
      const held = s.holder !== undefined;
      return {
        question: `Where is the ${o}?`,
        answer: held ? this.actorLoc.get(s.holder!)! : s.droppedAt!,
        support: [s.lastInteraction!, held ? this.actorMove.get(s.holder!)! : s.dropMoveFact!]
          .sort((x, y) => x - y),
      };
    }
    // qa3: "before the L" must name a place the object visited once, so the answer is unique.
    const options: { o: string; s: ObjectState; j: number }[] = [];
    for (const [o, s] of touched) {
      for (let j = 1; j < s.trail.length; j++) {
        if (s.trail.filter((t) => t.loc === s.trail[j].loc).length === 1) options.push({ o, s, j });
      }
    }
    if (!options.length) return undefined;
    const { o, s, j } = rng.pick(options);
    return {
      question: `Where was the ${o} before the ${s.trail[j].loc}?`,
      answer: s.trail[j - 1].loc,
      support: [s.trail[j - 1].moveFact, s.trail[j].moveFact, s.lastInteraction!]
        .sort((x, y) => x - y),
    };
  }
}

/** One story's samples (up to five questions, each with every fact before it). */
export function generateBabiStory(task: BabiTask, rng: Rng): BabiSample[] {
  const world = new World(rng, task);
  const samples: BabiSample[] = [];
  while (samples.length < QUESTIONS_PER_STORY && world.facts.length < MAX_FACTS_PER_STORY) {
    world.step();
    world.step();
    if (rng.next() >= ASK_PROBABILITY[task]) continue;
    const q = world.question();
    if (q) samples.push({ task, facts: world.facts.slice(), ...q });
  }
  return samples;
}

/** `n` samples from consecutive seeded stories. */
export function generateBabiSamples(task: BabiTask, n: number, seed: number): BabiSample[] {
  const rng = seededRng(seed);
  const out: BabiSample[] = [];
  while (out.length < n) out.push(...generateBabiStory(task, rng).slice(0, n - out.length));
  return out;
}

/** `"{Actor} Event {k}: "` prefixes (k counts that actor's facts), as PERK's chunker adds. */
export function eventPrefixedFacts(facts: readonly string[]): string[] {
  const counts = new Map<string, number>();
  return facts.map((f) => {
    const actor = f.split(" ", 1)[0];
    const k = counts.get(actor) ?? 0;
    counts.set(actor, k + 1);
    return `${actor} Event ${k}: ${f}`;
  });
}
