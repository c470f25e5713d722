/**
 * Typed, readable GPU errors. Each message says what went wrong and what to do.
 */
import { Schema } from "effect";

export class NoAdapterError extends Schema.TaggedError<NoAdapterError>()("NoAdapterError", {
  message: Schema.String,
}) {}

export class DeviceLostError extends Schema.TaggedError<DeviceLostError>()("DeviceLostError", {
  message: Schema.String,
}) {}

export class KernelCompileError extends Schema.TaggedError<KernelCompileError>()(
  "KernelCompileError",
  { message: Schema.String },
) {}

export const NO_ADAPTER_HELP =
  "No WebGPU adapter was found. Deno reaches GPUs through the Vulkan loader (libvulkan.so.1) " +
  "and a driver's ICD. On Debian/Ubuntu install the CPU driver with " +
  "`sudo apt-get install -y mesa-vulkan-drivers` (or the NVIDIA/AMD driver), make sure " +
  "XDG_RUNTIME_DIR is set, or run through ./perk, which does both.";
