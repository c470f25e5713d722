/** The experiment system: stages, graphs, the cache, sessions, estimates. */
export { defineStage, type Stage } from "./stage.ts";
export { node, type Plan, plan } from "./graph.ts";
export { StageCache } from "./cache.ts";
export { runGraph, runPlan } from "./runner.ts";
export { dryRunSession, runSession, type SessionOptions } from "./session.ts";
export { deviceWork, gpuResource } from "./gpu_work.ts";
export { defineExperiment } from "./experiment.ts";
export { costLine, planCost } from "./cost.ts";
