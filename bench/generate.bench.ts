// bench:generate — SmolLM2-135M-Instruct (Q4_1 GGUF): prefill and decode tokens/s at batch 1 with 128 new tokens,
// ours with 4-bit weights (MatMulNBits over the GGUF's own blocks) and in float32, and llama.cpp's (node-llama-cpp
// 3.21.1) on the same file, in one run; plus the time from the file path to a ready session.
import { existsSync } from 'node:fs';
import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';
import { getLlama } from 'node-llama-cpp';
import { Generator } from '../main/generate/generator.ts';
import { openGgufModel } from '../main/models/gguf/load.ts';
import { openGgufModelQ4 } from '../main/models/gguf/quantized.ts';

const GGUF = process.env.SMOLLM2_GGUF ?? join(process.env.PEFT_STUDIO_CACHE ?? join(homedir(), '.cache', 'peft-studio'), 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf');
if (!existsSync(GGUF)) throw new Error(`${GGUF} is missing: run tests/oracle/fetch-smollm2.sh`);
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const NEW_TOKENS = 128;

// The same prompt tokens for everyone, from llama.cpp's tokenizer (~120 tokens of prose).
const llama = await getLlama({ gpu: false, build: 'never' });
const llamaModel = await llama.loadModel({ modelPath: GGUF });
const promptText = 'Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world. '.repeat(3);
const prompt = [...llamaModel.tokenize(promptText)];

interface Figures {
  ready: number;
  prefill: number;
  decode: number;
}

const ours = async (open: () => ReturnType<typeof openGgufModel>): Promise<Figures> => {
  const t0 = performance.now();
  const generator = await Generator.create(open(), { threads });
  const ready = performance.now() - t0;
  for await (const _ of generator.generate(prompt.slice(0, 8), { maxNewTokens: 4 })); // warm-up
  let first = 0;
  let n = 0;
  const start = performance.now();
  for await (const _ of generator.generate(prompt, { maxNewTokens: NEW_TOKENS })) if (++n === 1) first = performance.now();
  const end = performance.now();
  await generator.release();
  return { ready, prefill: prompt.length / ((first - start) / 1000), decode: (n - 1) / ((end - first) / 1000) };
};

const llamaCpp = async (): Promise<Figures> => {
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: GGUF });
  const context = await model.createContext({ contextSize: 1024, threads, batchSize: 512 });
  const ready = performance.now() - t0;
  const run = async (tokens: number[], max: number) => {
    const seq = context.getSequence();
    let first = 0;
    let n = 0;
    const start = performance.now();
    for await (const _ of seq.evaluate(tokens as never, { temperature: 0 })) {
      if (++n === 1) first = performance.now();
      if (n >= max) break;
    }
    const end = performance.now();
    seq.dispose();
    return { start, first, end, n };
  };
  await run(prompt.slice(0, 8), 4);
  const r = await run(prompt, NEW_TOKENS);
  await context.dispose();
  return { ready, prefill: prompt.length / ((r.first - r.start) / 1000), decode: (r.n - 1) / ((r.end - r.first) / 1000) };
};

const rows: [string, Figures][] = [
  ['ours, 4-bit (MatMulNBits, GGUF blocks)', await ours(() => openGgufModelQ4(GGUF))],
  ['ours, float32 (dequantized)', await ours(() => openGgufModel(GGUF))],
  ['llama.cpp Q4_1 (node-llama-cpp 3.21.1)', await llamaCpp()],
];
console.log(`bench:generate  SmolLM2-135M-Instruct Q4_1, batch 1, prompt ${prompt.length} tokens, ${NEW_TOKENS} new, ${threads} threads, CPU`);
console.log('  engine                                      path→ready   prefill tok/s   decode tok/s');
for (const [name, f] of rows) {
  console.log(`  ${name.padEnd(42)} ${(f.ready / 1000).toFixed(2).padStart(8)} s ${f.prefill.toFixed(1).padStart(14)} ${f.decode.toFixed(1).padStart(14)}`);
}
const q4 = rows[0]![1];
const ref = rows[2]![1];
console.log(`  4-bit decode / llama.cpp decode: ${(q4.decode / ref.decode).toFixed(2)}× (goal ≥ 0.8×); path→ready ${(q4.ready / 1000).toFixed(2)} s (goal < 2 s)`);
await llamaModel.dispose();
