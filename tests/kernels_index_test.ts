/**
 * kernels/README.md's rule table is the map from each op to its kernel, rule, float64
 * reference and tests. This keeps it true without a GPU: every Rule declared in
 * kernels/autodiff/*.ts (read from the sources — rules are module-private consts, so there
 * is no runtime registry to ask) has exactly one row, each row names a rule that exists and
 * the file that declares it, and every path in the table exists.
 *
 * A Rule is found as an object literal with `name`, `forward`, `jvp` and `vjp` keys (tape.ts's
 * interface), whatever its declaration looks like (`const r: Rule<P> = {…}`, a `Record` of
 * rules, a factory returning one). A name that is not a string literal is written as in the
 * table: `${name}_grad` → `<name>_grad`, the shorthand `name` → `<name>`; ternaries of
 * literals give each literal.
 */
import assert from "node:assert/strict";
import { UNARY } from "../kernels/ops/unary_table.ts";

const ROOT = new URL("../", import.meta.url);
const AUTODIFF = "kernels/autodiff";
const README = "kernels/README.md";

/**
 * `src` with comments and the insides of string and template literals blanked (same length,
 * newlines kept), so braces in WGSL bodies and comments do not count; code inside `${…}` is kept.
 */
export function maskSource(src: string): string {
  const out = src.split("");
  const blank = (i: number) => {
    if (out[i] !== "\n") out[i] = " ";
  };
  // Stack of open contexts: "code" braces inside a template's ${…}, or a template itself.
  const stack: ("tpl" | "expr")[] = [];
  let depth = 0; // brace depth inside the innermost ${…}
  const depths: number[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i], n = src[i + 1];
    if (stack.at(-1) === "tpl") {
      if (c === "\\") {
        blank(i), blank(i + 1), i += 2;
      } else if (c === "`") {
        stack.pop(), i++;
      } else if (c === "$" && n === "{") {
        stack.push("expr"), depths.push(depth), depth = 0, i += 2;
      } else blank(i++);
      continue;
    }
    if (c === "/" && n === "/") {
      while (i < src.length && src[i] !== "\n") blank(i++);
    } else if (c === "/" && n === "*") {
      const end = src.indexOf("*/", i + 2), stop = end < 0 ? src.length : end + 2;
      while (i < stop) blank(i++);
    } else if (c === '"' || c === "'") {
      i++;
      while (i < src.length && src[i] !== c && src[i] !== "\n") {
        if (src[i] === "\\") blank(i++);
        blank(i++);
      }
      i++;
    } else if (c === "`") {
      stack.push("tpl"), i++;
    } else if (c === "{" && stack.at(-1) === "expr") {
      depth++, i++;
    } else if (c === "}" && stack.at(-1) === "expr") {
      if (depth === 0) stack.pop(), depth = depths.pop() ?? 0;
      else depth--;
      i++;
    } else i++;
  }
  return out.join("");
}

const OPEN = "([{", CLOSE = ")]}";

/** Index of the `{` opening the object literal that holds position `at` (masked source). */
function enclosingBrace(m: string, at: number): number {
  let d = 0;
  for (let i = at - 1; i >= 0; i--) {
    if (CLOSE.includes(m[i])) d++;
    else if (OPEN.includes(m[i])) {
      if (d === 0) return m[i] === "{" ? i : -1;
      d--;
    }
  }
  return -1;
}

/** The object literal's text at its own level (nested brackets blanked), from `{` to `}`. */
function topLevel(m: string, open: number): string {
  let d = 0, s = "";
  for (let i = open; i < m.length; i++) {
    const c = m[i];
    if (OPEN.includes(c)) d++;
    if (d <= 1 || c === "\n") s += c === "\n" || d <= 1 ? c : " ";
    else s += " ";
    if (CLOSE.includes(c) && --d === 0) return s;
  }
  return s;
}

/** The table names of a rule's `name` value (source text of the expression). */
function namesOf(expr: string): string[] {
  const e = expr.trim();
  if (/^[A-Za-z_$][\w$]*$/.test(e)) return [`<${e}>`];
  if (e.startsWith("`")) return [e.slice(1, -1).replace(/\$\{\s*([\w$.]+)\s*\}/g, "<$1>")];
  const lits = [...e.matchAll(/"([^"]*)"|'([^']*)'/g)].map((x) => x[1] ?? x[2]);
  if (!lits.length) throw new Error(`rule name ${e}: not a literal, template or identifier`);
  return lits;
}

export interface FoundRule {
  readonly name: string;
  readonly file: string;
}

/** Every Rule object literal in `src`: its name(s). */
export function rulesIn(src: string): string[] {
  const m = maskSource(src);
  const names: string[] = [];
  for (const hit of m.matchAll(/(?<=[{,]\s*)\bname\b(?=\s*[:,}])/g)) {
    const open = enclosingBrace(m, hit.index);
    if (open < 0) continue;
    const obj = topLevel(m, open);
    const has = (k: string) => new RegExp(`[{,]\\s*${k}\\s*[:(]`).test(obj);
    if (!has("forward") || !has("jvp") || !has("vjp")) continue;
    const after = hit.index + 4;
    const colon = /^\s*:/.exec(m.slice(after));
    if (!colon) {
      names.push("<name>"); // shorthand `name,`
      continue;
    }
    // The value runs to the next `,` or `}` at the object's own level.
    const start = after + colon[0].length;
    const rest = obj.slice(start - open);
    const end = start + rest.search(/[,}]/);
    names.push(...namesOf(src.slice(start, end)));
  }
  return names;
}

async function declaredRules(): Promise<FoundRule[]> {
  const found: FoundRule[] = [];
  for await (const e of Deno.readDir(new URL(`${AUTODIFF}/`, ROOT))) {
    if (!e.isFile || !e.name.endsWith(".ts")) continue;
    const file = `${AUTODIFF}/${e.name}`;
    for (const name of rulesIn(await Deno.readTextFile(new URL(file, ROOT)))) {
      found.push({ name, file });
    }
  }
  return found.sort((a, b) => a.name.localeCompare(b.name));
}

interface Row {
  readonly names: string[];
  readonly cells: string[];
  readonly line: number;
}

/** The rows of the README's rule table (the table whose header starts with `Rule`). */
export function tableRows(md: string): Row[] {
  const lines = md.split("\n");
  const head = lines.findIndex((l) => /^\|\s*Rule\s*\|/.test(l));
  if (head < 0) throw new Error(`${README}: no table with a "Rule" column`);
  const rows: Row[] = [];
  for (let i = head + 2; i < lines.length && lines[i].startsWith("|"); i++) {
    const cells = lines[i].split("|").slice(1, -1).map((c) => c.trim());
    const names = [...cells[0].matchAll(/`([^`]+)`/g)].map((x) => x[1]);
    rows.push({ names, cells, line: i + 1 });
  }
  return rows;
}

/** Backticked repository paths in a cell. */
const pathsIn = (cell: string) =>
  [...cell.matchAll(/`([^`\s]+)`/g)].map((x) => x[1]).filter((p) =>
    /^(kernels|tests|pipeline|bench)\/[\w./-]+$/.test(p)
  );

const rules = await declaredRules();
const rows = tableRows(await Deno.readTextFile(new URL(README, ROOT)));

Deno.test("kernels index: the source scan finds the rules (sanity)", () => {
  const names = rules.map((r) => r.name);
  for (const n of ["matmul", "attention", "attention_backward", "<name>", "<name>_grad"]) {
    assert(names.includes(n), `scan missed rule ${n}: found ${names.join(", ")}`);
  }
  // Kernel specs (kernel({ name, … })) are not rules.
  assert(!names.includes("argmax_rows"), "a kernel spec was taken for a rule");
  assert.equal(new Set(names).size, names.length, `a rule name is declared twice: ${names}`);
});

Deno.test("kernels index: every registered rule has exactly one row, naming its rule file", () => {
  for (const r of rules) {
    const hits = rows.filter((row) => row.names.includes(r.name));
    assert.equal(
      hits.length,
      1,
      `rule "${r.name}" (${r.file}) has ${hits.length} rows in ${README}; add one`,
    );
    assert.equal(
      hits[0].cells[2],
      `\`${r.file}\``,
      `${README}:${hits[0].line}: rule "${r.name}" is declared in ${r.file}`,
    );
  }
});

Deno.test("kernels index: every row names a registered rule", () => {
  const names = new Set(rules.map((r) => r.name));
  for (const row of rows) {
    assert.equal(row.names.length, 1, `${README}:${row.line}: one rule name per row`);
    assert(names.has(row.names[0]), `${README}:${row.line}: no rule "${row.names[0]}"`);
  }
});

Deno.test("kernels index: every path in the table exists", async () => {
  let n = 0;
  for (const row of rows) {
    for (const p of row.cells.flatMap(pathsIn)) {
      n++;
      const st = await Deno.stat(new URL(p, ROOT)).catch(() => undefined);
      assert(st?.isFile, `${README}:${row.line}: ${p} does not exist`);
    }
  }
  assert(n >= rows.length * 2, `only ${n} paths found in ${rows.length} rows`);
});

Deno.test("kernels index: the unary row lists every entry of the unary table", () => {
  const row = rows.find((r) => r.names[0] === "<name>");
  assert(row, `${README}: no <name> (unary) row`);
  for (const k of Object.keys(UNARY)) {
    assert(new RegExp(`\\b${k}\\b`).test(row.cells[1]), `${README}:${row.line}: add ${k}`);
  }
});
