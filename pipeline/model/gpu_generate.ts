/**
 * Batched greedy generation on the GPU. Prompts of different lengths are left padded (pad
 * keys masked, each row's positions start at its first real token), so every row's next
 * token comes from the same last column and one KV cache serves the batch. The argmax runs
 * on the GPU and only B ids per step come back; the next step is recorded before the
 * previous step's ids are read (the ids never leave the GPU on their way to the next
 * step), so the readback's wait overlaps the next step's work. Rows stop independently
 * (stop id, max tokens, the model's position limit); finished rows keep computing junk that
 * no other row can see, until every row has stopped.
 *
 * Semantics are those of reference.ts's generateGreedyBatch (its oracle in the tests).
 */
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import { ModelError } from "./errors.ts";
import type { Generation } from "./reference.ts";
import { GpuKvCache, type GpuLora, type GpuModel } from "./gpu_model.ts";
import { argmaxRows } from "../../kernels/autodiff/model_ops.ts";
import type { ModelConfig } from "./config.ts";

/** Budget of one masked prefill chunk's attention scores (bytes). */
export const PREFILL_SCORE_BYTES = 64 * 1024 * 1024;
/** Budget of one fused prefill chunk's activations (bytes; every layer's, kept until its end). */
export const PREFILL_ACTIVATION_BYTES = 256 * 1024 * 1024;

/**
 * f32 activations per token that one forward keeps until its scope ends (all layers): an
 * estimate from the shapes, fitted to the pool's peak (8K prompt, cpu profile: 68 KB/token).
 */
function activationFloatsPerToken(c: ModelConfig): number {
  const qkv = (c.heads + 2 * c.kvHeads) * c.headDim;
  return c.layers * (10 * c.dim + 3 * qkv + 4 * c.hidden);
}

export interface GpuGenerateOptions {
  /** New tokens at most. */
  readonly maxNewTokens: number;
  /** Stop tokens (not included in the result); default the config's eosIds. */
  readonly stopIds?: readonly number[];
  /** false: recompute the whole padded batch every step (the cache's oracle). Default true. */
  readonly useCache?: boolean;
  readonly lora?: GpuLora;
  /**
   * Columns per fused prefill chunk: the first chunk, and every chunk of unpadded rows
   * (default: PREFILL_ACTIVATION_BYTES of activations).
   */
  readonly prefillTokens?: number;
  /** Score budget of the masked prefill chunks (padded rows after the first chunk). */
  readonly prefillScoreBytes?: number;
  /** Called with each new token as it is chosen (streaming output). */
  readonly onToken?: (row: number, token: number) => void;
}

interface Row {
  readonly len: number;
  readonly out: number[];
  stop: Generation["stop"] | undefined;
}

/** Greedy decoding of several prompts at once. */
export async function generateGreedyGpu(
  model: GpuModel,
  prompts: readonly (readonly number[])[],
  opts: GpuGenerateOptions,
): Promise<Generation[]> {
  const c = model.config, rt = model.rt;
  const stops = new Set(opts.stopIds ?? c.eosIds);
  const B = prompts.length;
  if (B === 0) return [];
  for (const p of prompts) {
    if (p.length === 0) throw new ModelError("generate: a prompt needs at least one token");
  }
  const L = Math.max(...prompts.map((p) => p.length));
  const pad = Int32Array.from(prompts, (p) => L - p.length);
  const rows: Row[] = prompts.map((p) => ({ len: p.length, out: [], stop: undefined }));
  // Every row's sequence so far, left padded with id 0 (masked), for the uncached path.
  const seqs = prompts.map((p, b) => [...new Array(pad[b]).fill(0), ...p]);
  const maxP = c.maxPositions;
  const checkPositions = () => {
    for (const r of rows) if (!r.stop && r.len + r.out.length >= maxP) r.stop = "max_positions";
  };
  checkPositions();
  if (opts.maxNewTokens <= 0 || rows.every((r) => r.stop)) return finish(rows);

  const useCache = opts.useCache ?? true;
  // A fixed-capacity cache keeps every decode step's shapes equal (one set of pipelines);
  // rounding it up lets later calls with similar lengths reuse them too.
  const cache = useCache
    ? new GpuKvCache(c, B, Math.ceil((L + opts.maxNewTokens) / 64) * 64)
    : undefined;
  /** Positions of the S columns ending at column `end` (clamped: finished rows may run on). */
  const positions = (T: number, end: number) => {
    const pos = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        pos[b * T + t] = Math.min(maxP - 1, Math.max(0, end - T + t - pad[b]));
      }
    }
    return pos;
  };
  /**
   * Long prompts are prefilled into the cache in chunks of columns. GpuModel.forward runs the
   * first chunk, and every later chunk of unpadded rows, through the fused attention kernel
   * (no score matrix): their size is bounded by the activations they keep. Later chunks of
   * padded rows need a mask (composed attention, (B, H, chunk, capacity) scores), so their
   * size keeps the scores within PREFILL_SCORE_BYTES instead of growing with the square of
   * the prompt (an 8K prompt's full score matrix would be 1 GiB per layer).
   */
  const padded = pad.some((p) => p > 0);
  const fusedChunk = Math.max(
    1,
    opts.prefillTokens ??
      Math.floor(PREFILL_ACTIVATION_BYTES / (4 * B * activationFloatsPerToken(c))),
  );
  const maskedChunk = cache
    ? Math.max(
      1,
      Math.floor(
        (opts.prefillScoreBytes ?? PREFILL_SCORE_BYTES) / (4 * B * c.heads * cache.capacity!),
      ),
    )
    : L;
  const later = padded ? maskedChunk : fusedChunk;
  // Column boundaries of the chunks; the first holds every row's left padding and a token
  // (the cache fixes the padding with its first write).
  const bounds = [0];
  if (cache) {
    for (let e = Math.max(fusedChunk, Math.max(...pad) + 1); e < L; e += later) bounds.push(e);
  }
  bounds.push(L);
  const prefillPart = (k: number, logits: "none" | "last") =>
    model.forward(Int32Array.from(seqs.flatMap((r) => r.slice(bounds[k], bounds[k + 1]))), {
      batch: B,
      lora: opts.lora,
      kvCache: cache,
      leftPad: k === 0 ? pad : undefined,
      positions: positions(bounds[k + 1] - bounds[k], bounds[k + 1]),
      logits,
    });
  /** Record step s (0 = the prompts); returns the next ids (B) i32, owned by the caller. */
  const step = (s: number, prev: Tensor | undefined): Tensor =>
    rt.keep(rt.scope(() => {
      if (cache && s === 0 && bounds.length > 2) {
        for (let k = 0; k + 2 < bounds.length; k++) rt.scope(() => void prefillPart(k, "none"));
        const { logits } = prefillPart(bounds.length - 2, "last");
        return argmaxRows(logits!);
      }
      const S = L + s; // columns after this step's input
      let ids: Int32Array | Tensor, T: number;
      if (cache) {
        T = s === 0 ? L : 1;
        ids = s === 0 ? Int32Array.from(seqs.flat()) : prev!;
      } else {
        T = S;
        ids = Int32Array.from(seqs.flat());
      }
      const { logits } = model.forward(ids, {
        batch: B,
        lora: opts.lora,
        kvCache: cache,
        leftPad: cache && s > 0 ? undefined : pad,
        positions: positions(T, S),
        logits: "last",
      });
      return argmaxRows(logits!);
    }));

  let cur = step(0, undefined);
  try {
    for (let s = 1;; s++) {
      const pending = rt.read(cur) as Promise<Int32Array>;
      // With a cache the next step needs only `cur` (on the GPU): record it before waiting.
      // Its work is wasted when this read ends the generation.
      let next = cache && s < opts.maxNewTokens ? step(s, cur) : undefined;
      const ids = await pending;
      rows.forEach((r, b) => {
        const t = r.stop ? 0 : ids[b];
        seqs[b].push(t);
        if (r.stop) return;
        if (stops.has(t)) r.stop = "eos";
        else {
          r.out.push(t);
          opts.onToken?.(b, t);
        }
      });
      checkPositions();
      if (s >= opts.maxNewTokens || rows.every((r) => r.stop)) {
        next?.dispose();
        break;
      }
      next ??= step(s, cur); // the uncached path recomputes from `seqs`
      cur.dispose(); // its readers are recorded; the queue keeps the order
      cur = next;
    }
  } finally {
    cur.dispose();
    cache?.dispose();
  }
  return finish(rows);
}

function finish(rows: Row[]): Generation[] {
  return rows.map((r) => ({ tokens: r.out, stop: r.stop ?? "max_tokens" }));
}
