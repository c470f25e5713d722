/**
 * Progress reporting as a small service, so stages say `progress(done, total)` and the
 * terminal decides how to show it: a redrawn bar with rate and ETA on a TTY, and otherwise one
 * plain line at most every `intervalMs` (CI logs stay readable).
 */
import { Context } from "effect";

export interface ProgressShape {
  /** `label` is working; `done` of `total` units are finished. */
  update(label: string, done: number, total: number): void;
  /** A finished-line message (clears any bar first). */
  line(text: string): void;
}

export class Progress extends Context.Service<Progress, ProgressShape>()(
  "perk/pipeline/experiment/Progress",
) {}

/** "1m05s" style duration. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "?";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/** The text of one progress update: bar (TTY only), counts, rate and ETA. */
export function progressText(
  label: string,
  done: number,
  total: number,
  elapsedMs: number,
  bar: boolean,
): string {
  const frac = total > 0 ? Math.min(1, done / total) : 0;
  const rate = elapsedMs > 0 ? done / (elapsedMs / 1000) : 0;
  const eta = rate > 0 ? ((total - done) / rate) * 1000 : NaN;
  const width = 24, filled = Math.round(frac * width);
  const barText = bar ? `[${"#".repeat(filled)}${".".repeat(width - filled)}] ` : "";
  const head = `${label} ${barText}${done}/${total} (${(frac * 100).toFixed(0)}%)`;
  // No rate before time has passed (e.g. a stage that reports only its end).
  if (!(rate > 0) || done >= total) {
    return rate > 0 ? `${head} ${rate.toFixed(rate < 10 ? 2 : 0)}/s` : head;
  }
  return `${head} ${rate.toFixed(rate < 10 ? 2 : 0)}/s ETA ${formatDuration(eta)}`;
}

/** Console progress: a bar on a TTY, periodic lines otherwise. */
export function consoleProgress(
  { tty = Deno.stdout.isTerminal(), intervalMs = 10_000 } = {},
): ProgressShape {
  const started = new Map<string, number>();
  let lastLine = 0, barShown = false;
  const enc = new TextEncoder();
  const clearBar = () => {
    if (barShown) Deno.stdout.writeSync(enc.encode("\r\x1b[2K"));
    barShown = false;
  };
  return {
    update(label, done, total) {
      const now = performance.now();
      if (!started.has(label) || done === 0) started.set(label, now);
      const text = progressText(label, done, total, now - started.get(label)!, tty);
      if (tty) {
        Deno.stdout.writeSync(enc.encode(`\r\x1b[2K${text}`));
        barShown = true;
      } else if (now - lastLine >= intervalMs || done === total) {
        lastLine = now;
        console.log(text);
      }
    },
    line(text) {
      clearBar();
      console.log(text);
    },
  };
}

/** Collects everything (tests) or drops it. */
export function memoryProgress(): ProgressShape & { lines: string[]; updates: number } {
  const p = {
    lines: [] as string[],
    updates: 0,
    update() {
      p.updates++;
    },
    line(text: string) {
      p.lines.push(text);
    },
  };
  return p;
}
