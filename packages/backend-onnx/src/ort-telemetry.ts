/**
 * ONNX Runtime's Linux builds start Microsoft's telemetry SDK with the first session: on every run it
 * leaves an empty `/tmp/mat-debug-<pid>.log` and updates a store under the user's cache folder
 * (`$XDG_CACHE_HOME` or `~/.cache`, `Microsoft/DeveloperTools/.onnxruntime`). ORT_DISABLE_TELEMETRY=1
 * turns both off; ONNX Runtime reads it when its first session starts. A value the user set is kept.
 */
export function disableOrtTelemetry(): void {
  process.env.ORT_DISABLE_TELEMETRY ??= '1';
}
