/**
 * Experiment configuration. Layers, later wins: the shared defaults of the profile, the
 * experiment's own overrides, a YAML file (--config), then `--set key=value`. Every value is
 * validated by its field's Schema; an unknown key or an ill-typed value is a ConfigError that
 * names the key, the value and what is allowed.
 */
import { Effect, Schema, Struct } from "effect";
import YAML from "yaml";
import { ConfigError } from "./errors.ts";

export const PROFILES = ["cpu", "paper"] as const;
export type Profile = typeof PROFILES[number];

/** One configuration key: its Schema, the allowed values in words, and what it means. */
export interface Field<A = unknown> {
  // deno-lint-ignore no-explicit-any
  readonly schema: Schema.Codec<A, any>;
  readonly allowed: string;
  readonly doc: string;
}

// deno-lint-ignore no-explicit-any
export type Fields = Record<string, Field<any>>;
export type Config = Readonly<Record<string, unknown>>;

/** Define a field. */
export function field<A>(
  // deno-lint-ignore no-explicit-any
  schema: Schema.Codec<A, any>,
  allowed: string,
  doc: string,
): Field<A> {
  return { schema, allowed, doc };
}

/** A Field's Schema, key by key (`Struct.map` keeps each key's value type). */
interface SchemaOf extends Struct.Lambda {
  <A>(f: Field<A>): Field<A>["schema"];
  readonly "~lambda.out": this["~lambda.in"] extends Field<infer A> ? Field<A>["schema"] : never;
}
const schemaOf = Struct.lambda<SchemaOf>((f) => f.schema);

/**
 * The Struct of some fields: decodes a config's values of those keys into typed fields (other
 * keys are dropped), so code reads `c.n_train` as a number instead of casting.
 */
export const fieldsStruct = <F extends Fields>(fields: F) =>
  Schema.Struct(Struct.map(fields, schemaOf));

/** A YAML mapping (a plain object, not a list). */
export const isRecord = (v: unknown): v is Readonly<Record<string, unknown>> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** A sweep: key → the values to try (the grid is every combination). */
export type Sweep = Readonly<Record<string, readonly unknown[]>>;

/** How the CLI asks for a configuration. */
export interface ConfigRequest {
  readonly profile: Profile;
  /** Parsed contents of a --config YAML file and its path (for messages). */
  readonly file?: { readonly path: string; readonly values: unknown };
  /** Raw `key=value` strings from --set (and --model), in order. */
  readonly sets?: readonly string[];
  /** Raw `key=v1,v2` strings from --sweep. */
  readonly sweeps?: readonly string[];
}

/**
 * A rule between parameters, checked on every sweep point of the resolved config: a message
 * naming both keys and the fix, or undefined when the point is fine.
 */
export type Constraint = (config: Config) => string | undefined;

/** The layers below the request: shared defaults and the experiment's own choices. */
export interface ConfigBase {
  readonly defaults: Readonly<Record<Profile, Config>>;
  readonly constraints?: readonly Constraint[];
  readonly overrides?: Readonly<Partial<Record<Profile | "all", Config>>>;
  readonly sweep?: Readonly<Partial<Record<Profile | "all", Sweep>>>;
}

export interface Resolved {
  readonly profile: Profile;
  readonly config: Config;
  readonly sweep: Sweep;
}

/** The first value that occurs twice (compared as JSON), or undefined. */
function repeated(values: readonly unknown[]): unknown {
  const seen = new Set<string>();
  for (const v of values) {
    const k = JSON.stringify(v);
    if (seen.has(k)) return v;
    seen.add(k);
  }
  return undefined;
}

function describe(value: unknown): string {
  return typeof value === "string" ? `"${value}"` : JSON.stringify(value);
}

function unknownKey(fields: Fields, key: string, where: string): ConfigError {
  return new ConfigError({
    message: `${where}: unknown parameter "${key}"; allowed parameters: ` +
      Object.keys(fields).sort().join(", "),
  });
}

/** Decode one value of `key`; the error names the key, the value and what is allowed. */
export function decodeField(
  fields: Fields,
  key: string,
  value: unknown,
  where: string,
): Effect.Effect<unknown, ConfigError> {
  const f = fields[key];
  if (!f) return Effect.fail(unknownKey(fields, key, where));
  return Schema.decodeUnknownEffect(f.schema)(value).pipe(
    Effect.mapError((e) =>
      new ConfigError({
        message: `${where}: parameter "${key}" = ${describe(value)} is invalid ` +
          `(${e.message.replaceAll("\n", " ")}); allowed: ${f.allowed}`,
      })
    ),
  );
}

/** Parse a scalar CLI word: booleans, numbers, else the string itself. */
function parseScalar(raw: string): unknown {
  const t = raw.trim();
  if (t === "true" || t === "false") return t === "true";
  if (t !== "" && Number.isFinite(Number(t))) return Number(t);
  return t;
}

/**
 * Readings of a CLI value, tried against the field's Schema in order: YAML flow syntax
 * ("[1k, 8k]"), a comma list, the natural scalar ("4" → 4), the raw string (a string field
 * given "8"), and a one-element list (a list field given one value). The Schema decides.
 */
function candidates(raw: string): unknown[] {
  const t = raw.trim();
  const out: unknown[] = [];
  if (t.startsWith("[") || t.startsWith("{")) {
    try {
      out.push(YAML.parse(t));
    } catch { /* not YAML: try the plain readings */ }
  }
  if (t.includes(",")) out.push(t.split(",").map(parseScalar), t.split(",").map((s) => s.trim()));
  const s = parseScalar(t);
  out.push(s, t, [s], [t]);
  return out;
}

/** Decode a CLI string for `key`, trying the readings of `candidates`. */
export function parseCliValue(
  fields: Fields,
  key: string,
  raw: string,
  where: string,
): Effect.Effect<unknown, ConfigError> {
  if (!fields[key]) return Effect.fail(unknownKey(fields, key, where));
  const options = candidates(raw);
  return Effect.firstSuccessOf(options.map((c) => decodeField(fields, key, c, where))).pipe(
    Effect.catch(() => decodeField(fields, key, parseScalar(raw), where)),
  );
}

/** Split `key=value`, with a clear error otherwise. */
export function splitAssignment(
  arg: string,
  flag: string,
): Effect.Effect<[string, string], ConfigError> {
  const eq = arg.indexOf("=");
  if (eq <= 0) {
    return Effect.fail(
      new ConfigError({ message: `${flag} "${arg}": expected key=value (e.g. ${flag} rank=16)` }),
    );
  }
  return Effect.succeed([arg.slice(0, eq).trim(), arg.slice(eq + 1)]);
}

/** Validate every key of a layer (defaults, overrides, YAML). */
const decodeLayer = Effect.fnUntraced(function* (
  fields: Fields,
  values: Config,
  where: string,
) {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(values)) {
    out[key] = yield* decodeField(fields, key, value, where);
  }
  return out;
});

/** `--sweep rank=16,256` → {rank: [16, 256]}, each value validated as the key's type. */
export const parseSweep = Effect.fnUntraced(function* (fields: Fields, args: readonly string[]) {
  const sweep: Record<string, unknown[]> = {};
  for (const arg of args) {
    const [key, raw] = yield* splitAssignment(arg, "--sweep");
    if (!fields[key]) return yield* unknownKey(fields, key, "--sweep");
    const parts = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
    if (parts.length === 0) {
      return yield* new ConfigError({ message: `--sweep ${key}: give at least one value` });
    }
    const values: unknown[] = [];
    for (const part of parts) values.push(yield* parseCliValue(fields, key, part, "--sweep"));
    sweep[key] = values;
  }
  return sweep;
});

const decodeSweep = Effect.fnUntraced(function* (fields: Fields, sweep: unknown, where: string) {
  if (sweep === undefined || sweep === null) return {};
  if (typeof sweep !== "object" || Array.isArray(sweep)) {
    return yield* new ConfigError({ message: `${where}: sweep must map keys to lists of values` });
  }
  const out: Record<string, unknown[]> = {};
  for (const [key, values] of Object.entries(sweep)) {
    if (!Array.isArray(values) || values.length === 0) {
      return yield* new ConfigError({
        message: `${where}: sweep.${key} must be a non-empty list of values`,
      });
    }
    out[key] = [];
    for (const v of values) out[key].push(yield* decodeField(fields, key, v, `${where} sweep`));
  }
  return out;
});

/** A --config YAML file: flat `key: value` (plus optional `sweep:`), or a run's config.yaml. */
function fileLayers(values: unknown, path: string) {
  if (values === null || values === undefined) return Effect.succeed({ config: {}, sweep: {} });
  if (!isRecord(values)) {
    return Effect.fail(
      new ConfigError({ message: `--config ${path}: expected a YAML mapping of parameter: value` }),
    );
  }
  // The shape configYaml writes (runs/<experiment>/<run>/config.yaml).
  if (isRecord(values.config)) {
    return Effect.succeed({ config: values.config, sweep: values.sweep ?? {} });
  }
  const { sweep, ...config } = values;
  return Effect.succeed({ config, sweep: sweep ?? {} });
}

/** The resolved configuration and sweep of an experiment for a request. */
export const resolveConfig = Effect.fnUntraced(function* (
  fields: Fields,
  base: ConfigBase,
  request: ConfigRequest,
) {
  const profile = request.profile;
  if (!PROFILES.some((p) => p === profile)) {
    return yield* new ConfigError({
      message: `--profile "${profile}": allowed profiles are ${PROFILES.join(", ")}`,
    });
  }
  const config: Record<string, unknown> = {
    ...(yield* decodeLayer(fields, base.defaults[profile], `defaults (profile ${profile})`)),
    ...(yield* decodeLayer(fields, base.overrides?.all ?? {}, "experiment overrides")),
    ...(yield* decodeLayer(
      fields,
      base.overrides?.[profile] ?? {},
      `experiment overrides (profile ${profile})`,
    )),
  };
  let sweep: Record<string, unknown[]> = {
    ...(yield* decodeSweep(fields, base.sweep?.all, "experiment")),
    ...(yield* decodeSweep(fields, base.sweep?.[profile], `experiment (profile ${profile})`)),
  };
  if (request.file) {
    const where = `--config ${request.file.path}`;
    const layer = yield* fileLayers(request.file.values, request.file.path);
    Object.assign(config, yield* decodeLayer(fields, layer.config, where));
    sweep = { ...sweep, ...(yield* decodeSweep(fields, layer.sweep, where)) };
  }
  for (const arg of request.sets ?? []) {
    const [key, raw] = yield* splitAssignment(arg, "--set");
    config[key] = yield* parseCliValue(fields, key, raw, "--set");
  }
  sweep = { ...sweep, ...(yield* parseSweep(fields, request.sweeps ?? [])) };
  for (const key of Object.keys(fields)) {
    if (!(key in config)) {
      return yield* new ConfigError({
        message: `parameter "${key}" has no value in profile "${profile}"; ` +
          `set it with --set ${key}=… (allowed: ${fields[key].allowed})`,
      });
    }
  }
  // Repeated values would run the same point twice, or one method or task twice.
  for (const [key, values] of Object.entries(sweep)) {
    const dup = repeated(values);
    if (dup !== undefined) {
      return yield* new ConfigError({
        message: `sweep ${key}: the value ${describe(dup)} is given twice; give distinct values`,
      });
    }
  }
  for (const [key, value] of Object.entries(config)) {
    const dup = Array.isArray(value) ? repeated(value) : undefined;
    if (dup !== undefined) {
      return yield* new ConfigError({
        message: `parameter "${key}" lists ${describe(dup)} twice; list each value once`,
      });
    }
  }
  for (const point of sweepGrid(sweep)) {
    for (const rule of base.constraints ?? []) {
      const message = rule({ ...config, ...point });
      if (message) {
        const at = Object.keys(point).length ? ` (sweep point ${JSON.stringify(point)})` : "";
        return yield* new ConfigError({ message: message + at });
      }
    }
  }
  // A one-value sweep is just a setting; keep it out of the grid (and the CSV columns).
  for (const [key, values] of Object.entries(sweep)) {
    if (values.length === 1) {
      config[key] = values[0];
      delete sweep[key];
    }
  }
  const resolved: Resolved = { profile, config, sweep };
  return resolved;
});

/** Every combination of the sweep's values (one empty point when there is no sweep). */
export function sweepGrid(sweep: Sweep): Record<string, unknown>[] {
  let points: Record<string, unknown>[] = [{}];
  for (const [key, values] of Object.entries(sweep)) {
    points = points.flatMap((p) => values.map((v) => ({ ...p, [key]: v })));
  }
  return points;
}

/** The resolved config as YAML (a run's config.yaml, --dry-run); --config reads it back. */
export function configYaml(experiment: string, r: Resolved): string {
  return YAML.stringify({
    experiment,
    profile: r.profile,
    config: r.config,
    ...(Object.keys(r.sweep).length ? { sweep: r.sweep } : {}),
  });
}

/** Read and parse a --config file. */
export const readConfigFile = (path: string) =>
  Effect.try({
    try: () => {
      const values: unknown = YAML.parse(Deno.readTextFileSync(path));
      return { path, values };
    },
    catch: (e) =>
      new ConfigError({
        message: `--config ${path}: ${e instanceof Error ? e.message : String(e)}; ` +
          "give a readable YAML file",
      }),
  });
