/**
 * The methods experiments may compare. A method is registered by importing its module's
 * `method` here and listing it in METHODS (pipeline/experiment/methods.ts has the interface
 * and a worked example); the config keys it reads are its params Struct's fields.
 */
import type { Gpu } from "../kernels/runtime/gpu.ts";
import { type AnyMethod, MethodRegistry } from "../pipeline/experiment/methods.ts";
import { method as perk } from "../pipeline/perk/method.ts";
import { method as perkNoEncode } from "../pipeline/perk/method_no_encode.ts";
import { method as perkTtt } from "../pipeline/perk/method_ttt.ts";
import { method as ftIcr } from "../pipeline/baselines/ft_icr/method.ts";
import { method as promptOnly } from "../pipeline/baselines/prompt_only/method.ts";
import { method as contextMode } from "../pipeline/baselines/context_mode.ts";

export const METHODS: readonly AnyMethod<Gpu>[] = [
  perk,
  perkNoEncode,
  perkTtt,
  ftIcr,
  promptOnly,
  contextMode,
];

export const METHOD_NAMES: readonly string[] = METHODS.map((m) => m.name);

/** The registry the experiment CLI (and the tests that run real methods) look methods up in. */
export const methodRegistry = (): MethodRegistry<Gpu> => new MethodRegistry(METHODS);
