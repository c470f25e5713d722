/**
 * Config keys the baselines read beyond the shared ones: each is used when
 * experiments/defaults.ts defines it and takes the default here otherwise, so the methods
 * run before those keys exist and follow them once they do.
 *
 *  - ft_full: FT-ICR trains every base weight instead of a LoRA adapter (default false:
 *    LoRA of the shared `rank`, like-for-like with PERK);
 *  - ft_batch: problems per FT-ICR optimizer step (default 1, as PERK's outer loop);
 *  - rope_scaling: "none" (default: a context longer than a RoPE model's positions is an
 *    error), "linear:F" or "yarn:F" (learned positions are interpolated regardless).
 */
import { Schema } from "effect";
import { FIELDS } from "../../experiments/defaults.ts";

export const OPTIONAL_DEFAULTS = { ft_full: false, ft_batch: 1, rope_scaling: "none" } as const;

/** The optional keys the experiment config defines. */
export function optionalKeys(...keys: (keyof typeof OPTIONAL_DEFAULTS)[]): string[] {
  return keys.filter((k) => k in FIELDS);
}

export const OptionalFields = {
  ft_full: Schema.optionalKey(Schema.Boolean),
  ft_batch: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))),
  rope_scaling: Schema.optionalKey(Schema.String),
};
