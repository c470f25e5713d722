/** Every declared experiment by name (`deno task experiment <name>`). */
import type { ExperimentDef } from "../pipeline/experiment/experiment.ts";
import ablateRank from "./ablate-rank.ts";
import ablateSteps from "./ablate-steps.ts";
import ablateTruncation from "./ablate-truncation.ts";
import qa1k1 from "./babilong-qa1-1k.ts";
import qa1k8 from "./babilong-qa1-8k.ts";
import qa2k1 from "./babilong-qa2-1k.ts";
import qa2k8 from "./babilong-qa2-8k.ts";
import qa3k1 from "./babilong-qa3-1k.ts";
import qa3k8 from "./babilong-qa3-8k.ts";
import efficiency from "./efficiency.ts";
import lengthGeneralisation from "./length-generalisation.ts";
import positionalBias from "./positional-bias.ts";
import recall from "./student-records-recall.ts";
import relation from "./student-records-relation.ts";
import aggregate from "./student-records-aggregate.ts";

const ALL: readonly ExperimentDef[] = [
  qa1k1,
  qa2k1,
  qa3k1,
  qa1k8,
  qa2k8,
  qa3k8,
  recall,
  relation,
  aggregate,
  ablateRank,
  ablateSteps,
  ablateTruncation,
  lengthGeneralisation,
  positionalBias,
  efficiency,
];

export const EXPERIMENTS: ReadonlyMap<string, ExperimentDef> = new Map(ALL.map((e) => [e.name, e]));
