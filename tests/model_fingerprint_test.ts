/** Model fingerprints for cache keys: content, not path; memoised by size and mtime. */
import assert from "node:assert/strict";
import { modelFingerprint } from "../pipeline/model/fingerprint.ts";
import { baseNode } from "../pipeline/base/base_stage.ts";

Deno.test("model fingerprint: follows the bytes, is memoised, and reaches the base node's parameters", () => {
  const dir = Deno.makeTempDirSync();
  const m = `${dir}/model`, memo = `${dir}/memo.json`;
  Deno.mkdirSync(m);
  Deno.writeTextFileSync(`${m}/config.json`, "{}");
  Deno.writeFileSync(`${m}/model.safetensors`, new Uint8Array([1, 2, 3]));
  const a = modelFingerprint(m, memo);
  assert.match(a, /^sha256:[0-9a-f]{64}$/);
  assert.equal(modelFingerprint(m), a); // same bytes, no memo: same hash
  assert.ok(Object.values(JSON.parse(Deno.readTextFileSync(memo))).includes(a));
  // Weights rewritten in place (same size): a new fingerprint.
  Deno.writeFileSync(`${m}/model.safetensors`, new Uint8Array([1, 2, 4]));
  Deno.utimeSync(`${m}/model.safetensors`, new Date(), new Date(Date.now() + 5000));
  const b = modelFingerprint(m, memo);
  assert.notEqual(b, a);
  // A copy elsewhere has the same content.
  Deno.mkdirSync(`${dir}/copy`);
  for (const f of ["config.json", "model.safetensors"]) {
    Deno.copyFileSync(`${m}/${f}`, `${dir}/copy/${f}`);
  }
  assert.equal(modelFingerprint(`${dir}/copy`), b);
  assert.equal(modelFingerprint(`${dir}/none`), "missing");
  const n = baseNode(m);
  assert.deepEqual(n.params, { path: m, content: modelFingerprint(m) });
  Deno.removeSync(dir, { recursive: true });
});
