// Chat with a BOTTLENECK or ADAPTER_FUSION adapter: the method's rewrite is applied to the KV-cache generation graph
// and the adapter's tensors become constants of it (method-adapter.ts's bakeAdapterTensors), so the session is the
// base model's with the adapter baked in. The adapters act per position, so the KV cache needs nothing extra.
import type { SessionOptions } from '../engine/onnx/runtime.ts';
import type { LoadedModel } from '../models/hf-folder.ts';
import { loadAdapterFusion } from '../peft/adapter-fusion.ts';
import { loadBottleneckAdapter } from '../peft/bottleneck.ts';
import { PeftError } from '../peft/errors.ts';
import { loadAdapterFiles } from '../peft/peft-io.ts';
import { Generator } from './generator.ts';
import { buildGenerationGraph } from './kv-graph.ts';
import { type AdapterGenerator, bakeAdapterTensors } from './method-adapter.ts';

/** peft_types this module opens. */
export const BOTTLENECK_CHAT_TYPES: readonly string[] = ['BOTTLENECK', 'ADAPTER_FUSION'];

/** A generator answering with the adapter in `dir` applied (use it with chat()); release its generator when done. */
export const openBottleneckGenerator = async (model: LoadedModel, dir: string, session: SessionOptions = {}): Promise<AdapterGenerator> => {
  const peftType = String(loadAdapterFiles(dir).config.peft_type);
  const base = buildGenerationGraph(model);
  let loaded;
  if (peftType === 'BOTTLENECK') loaded = loadBottleneckAdapter(dir, base);
  else if (peftType === 'ADAPTER_FUSION') loaded = loadAdapterFusion(dir, base, { inference: true });
  else throw new PeftError(`${dir}: peft_type '${peftType}' is not a bottleneck adapter; this opens ${BOTTLENECK_CHAT_TYPES.join(', ')}`);
  const graph = bakeAdapterTensors(loaded.adapted);
  const extra = graph.inputs.map((id) => graph.value(id).name).filter((name) => !base.has(name));
  if (extra.length) throw new PeftError(`${dir}: the ${peftType} rewrite needs runtime inputs a chat session does not feed: ${extra.join(', ')}`);
  return { generator: await Generator.create(model, session, graph), peftType, warnings: loaded.warnings };
};
