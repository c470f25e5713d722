/**
 * Acquire a WebGPU device with the features perk uses. Plain async code; gpu.ts wraps it
 * as an Effect service with acquire/release.
 */
import { Runtime } from "./runtime.ts";
import type { AdapterRecord } from "./runtime.ts";
import { NO_ADAPTER_HELP } from "./errors.ts";

export interface DeviceOptions {
  readonly powerPreference?: GPUPowerPreference;
}

const LIMIT_KEYS = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxComputeWorkgroupSizeX",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupStorageSize",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
] as const;

/** Returns the runtime, or throws an Error whose message says what to install. */
export async function createRuntime(opts: DeviceOptions = {}): Promise<Runtime> {
  if (!("gpu" in navigator) || !navigator.gpu) throw new Error(NO_ADAPTER_HELP);
  const adapter = await navigator.gpu.requestAdapter({
    powerPreference: opts.powerPreference ?? "high-performance",
  });
  if (!adapter) throw new Error(NO_ADAPTER_HELP);
  const info = adapter.info as GPUAdapterInfo & {
    subgroupMinSize?: number;
    subgroupMaxSize?: number;
    isFallbackAdapter?: boolean;
  };
  // lavapipe grants `subgroups` although adapter.features does not list it: ask anyway,
  // and fall back to a device without it if the request is refused.
  const wanted = ["subgroups", "shader-f16", "timestamp-query"] as GPUFeatureName[];
  const optional = wanted.filter((f) => f === "subgroups" || adapter.features.has(f));
  const limits: Record<string, number> = {};
  for (const k of LIMIT_KEYS) limits[k] = (adapter.limits as unknown as Record<string, number>)[k];
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures: optional, requiredLimits: limits });
  } catch {
    device = await adapter.requestDevice({
      requiredFeatures: optional.filter((f) => f !== "subgroups"),
      requiredLimits: limits,
    });
  }
  const record: AdapterRecord = {
    description: info.description || info.device || "unknown adapter",
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    isFallbackAdapter: Boolean(
      info.isFallbackAdapter ??
        (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter,
    ),
    subgroupMinSize: info.subgroupMinSize ?? 0,
    subgroupMaxSize: info.subgroupMaxSize ?? 0,
    features: [...device.features].sort(),
    limits,
  };
  return new Runtime(device, record);
}
