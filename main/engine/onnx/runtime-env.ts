// Imported by runtime.ts before onnxruntime-node loads: ORT 1.30 otherwise writes a telemetry device id and
// database under ~/.cache and a log in /tmp on every load.
process.env.ORT_DISABLE_TELEMETRY ??= '1';
