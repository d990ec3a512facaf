// peft-studio: the command line over the service. Exit codes: 0 ok, 1 failure, 2 unusable input (bad dataset,
// model or arguments), 130 interrupted.
import { parseArgs } from 'node:util';
import { ModelLoadError } from '../models/errors.ts';
import { TokenizerError } from '../models/tokenizer/index.ts';
import { PeftError } from '../peft/errors.ts';
import { ExportError } from '../models/export/errors.ts';
import { CompareRunsError } from '../service/compare-runs.ts';
import { RunConfigError } from '../service/run-config.ts';
import { DatasetError } from '../train/dataset/index.ts';
import { runChatCommand } from './chat-command.ts';
import { runDatasetInspect } from './dataset-command.ts';
import { runDemoCommand } from './demo-command.ts';
import { runSweepCommand, runSweepShow } from './sweep-command.ts';
import { runRunsCommand, runTrainCommand } from './train-command.ts';
import { runEvalCommand } from './eval-command.ts';
import { runExportCommand, runMergeCommand } from './adapter-commands.ts';
import { runRunsCompare } from './runs-compare.ts';

export const EXIT = { ok: 0, failure: 1, badInput: 2, interrupted: 130 } as const;

const USAGE = `usage: peft-studio <command> [options]

commands:
  demo [--model PATH] [--out DIR] [--steps N] [--threads N] [--json]
      Trains a LoRA on SmolLM2-135M-Instruct to answer US-capital questions as one JSON object, shows the eval
      loss falling, and prints base and adapter answers side by side on 20 held-out questions.

  chat --model PATH [--adapter DIR]... [--max-tokens N] [--temperature T] [--seed N] [--system TEXT] [--json] PROMPT
      The base model and up to 4 adapters (PEFT folders) answer PROMPT side by side, in one batched pass.

  train --config FILE [--db PATH] [--json] [--resume [--run ID]]
      Trains as the YAML/JSON config says (model, dataset, method = a PEFT adapter_config: LORA, ADALORA, VERA,
      DELTA_LORA, LORA_DROP, IA3, BITFIT, SELECTIVE or FULL; LoRA+ with loraplus_lr_ratio, LoRA-FA with lora_fa: true;
      training, output), recording the run, its metrics, checkpoints and adapter (FULL: model folder) in the run
      history. Ctrl-C pauses with a checkpoint.
      --resume continues the interrupted (paused or killed) run of that output folder, or run ID (its stored config
      when --config is left out), in the same run from its newest checkpoint; with none it starts from step 0.
  sweep --config FILE [--db PATH] [--json]
      A run config plus sweep: { mode: fused | sequential, search: grid | random, trials, seed, space: { r, lora_alpha,
      lr, lora_dropout, target_modules }, halving: { rungs, keep } }. Fused mode trains all trials in one graph over one
      copy of the base; prints the eval loss over r × alpha and the best trial. Ctrl-C cancels.
  sweep show ID [--db PATH] [--json]
  runs [list | show ID | compare ID ID...] [--db PATH] [--json]
      compare: the config fields that differ, and every metric's final (and best) value side by side.
  eval --model PATH [--adapter DIR]... --dataset FILE [--format F] [--max-length N] [--batch-size N] [--threads N]
       [--no-base] [--db PATH] [--json]
      Eval loss, perplexity and target tokens of the base model and each adapter, one line each (the training
      run's tokenization and label masks). With --db, adapter columns are recorded on the runs that trained them.
  merge --model PATH --adapter DIR [--adapter DIR]... [--weights W,W...] [--combination linear|cat|svd|...]
        [--svd-rank N] [--density D] --out DIR [--db PATH] [--json]
      LoRA adapters combined into one PEFT adapter (default: cat, equal weights); registered in the history with --db.
  export --model PATH --adapter DIR --format hf|gguf|gguf-lora|ollama [--gguf-type f16|q8_0|f32] [--name N]
         --out PATH [--json]
      hf: merged HF folder; gguf: merged GGUF file; ollama: folder with model.gguf and a Modelfile;
      gguf-lora: the adapter as a llama.cpp GGUF LoRA (f32 or f16).
  dataset inspect FILE [--format F] [--model M] [--json]
      Format, rows, token statistics (with --model) and every problem as FILE:LINE: message; exit 2 if unusable.
  estimate --config FILE [--json]
      Peak memory (RSS, with its breakdown) and step time of the run config before training, on this machine.

  serve [--host 127.0.0.1] [--port N] [--token T] [--db PATH] [--renderer DIR] [--json]
      The workbench in a browser: the built renderer at http://HOST:PORT/ (npm run build:renderer; --renderer
      serves another build) and the service's API over WebSocket at ws://HOST:PORT/api (one JSON request per
      message; see main/service/api-contract.ts). A host other than loopback needs --token (or
      $PEFT_STUDIO_TOKEN); open http://HOST:PORT/?token=T then. Default port 0: a free one, printed.

exit codes: 0 ok, 1 failure, 2 unusable input, 130 interrupted`;

const main = async (argv: string[]): Promise<number> => {
  const [command, ...rest] = argv;
  switch (command) {
    case 'demo': {
      const { values } = parseArgs({
        args: rest,
        options: { model: { type: 'string' }, out: { type: 'string' }, steps: { type: 'string' }, threads: { type: 'string' }, json: { type: 'boolean' } },
      });
      return runDemoCommand(values);
    }
    case 'chat': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          model: { type: 'string' }, adapter: { type: 'string', multiple: true }, 'max-tokens': { type: 'string' },
          temperature: { type: 'string' }, seed: { type: 'string' }, system: { type: 'string' }, json: { type: 'boolean' },
        },
      });
      if (positionals.length === 0) {
        console.error('peft-studio chat: give the prompt as the last argument');
        return EXIT.badInput;
      }
      return runChatCommand({ ...values, maxTokens: values['max-tokens'] }, positionals.join(' '));
    }
    case 'train': {
      const { values } = parseArgs({
        args: rest,
        options: { config: { type: 'string' }, db: { type: 'string' }, json: { type: 'boolean' }, resume: { type: 'boolean' }, run: { type: 'string' } },
      });
      return runTrainCommand(values);
    }
    case 'sweep': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { config: { type: 'string' }, db: { type: 'string' }, json: { type: 'boolean' } } });
      if (positionals[0] === 'show') return runSweepShow(positionals[1], values);
      return runSweepCommand(values);
    }
    case 'runs': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { db: { type: 'string' }, json: { type: 'boolean' } } });
      if (positionals[0] === 'compare') return runRunsCompare(positionals.slice(1), values);
      return runRunsCommand(positionals[0], values, positionals[1]);
    }
    case 'eval': {
      const { values } = parseArgs({
        args: rest,
        options: {
          model: { type: 'string' }, adapter: { type: 'string', multiple: true }, dataset: { type: 'string' }, format: { type: 'string' },
          'max-length': { type: 'string' }, 'batch-size': { type: 'string' }, threads: { type: 'string' }, 'no-base': { type: 'boolean' },
          db: { type: 'string' }, json: { type: 'boolean' },
        },
      });
      return runEvalCommand({ ...values, maxLength: values['max-length'], batchSize: values['batch-size'], noBase: values['no-base'] });
    }
    case 'merge': {
      const { values } = parseArgs({
        args: rest,
        options: {
          model: { type: 'string' }, adapter: { type: 'string', multiple: true }, weights: { type: 'string' }, combination: { type: 'string' },
          'svd-rank': { type: 'string' }, density: { type: 'string' }, out: { type: 'string' }, db: { type: 'string' }, json: { type: 'boolean' },
        },
      });
      return runMergeCommand({ ...values, svdRank: values['svd-rank'] });
    }
    case 'export': {
      const { values } = parseArgs({
        args: rest,
        options: {
          model: { type: 'string' }, adapter: { type: 'string', multiple: true }, format: { type: 'string' }, 'gguf-type': { type: 'string' },
          name: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' },
        },
      });
      return runExportCommand({ ...values, ggufType: values['gguf-type'] });
    }
    case 'estimate': {
      const { values } = parseArgs({ args: rest, options: { config: { type: 'string' }, json: { type: 'boolean' } } });
      const { runEstimateCommand } = await import('./estimate-command.ts');
      return runEstimateCommand(values);
    }
    case 'serve': {
      const { values } = parseArgs({ args: rest, options: { host: { type: 'string' }, port: { type: 'string' }, token: { type: 'string' }, db: { type: 'string' }, renderer: { type: 'string' }, json: { type: 'boolean' } } });
      const { runServeCommand, ServeError } = await import('./serve-command.ts');
      return runServeCommand(values).catch((err: unknown) => {
        if (!(err instanceof ServeError)) throw err;
        console.error(`peft-studio serve: ${err.message}`);
        return EXIT.badInput;
      });
    }
    case 'dataset': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { format: { type: 'string' }, model: { type: 'string' }, json: { type: 'boolean' } } });
      if (positionals[0] !== 'inspect') {
        console.error(`peft-studio dataset: unknown subcommand '${positionals[0] ?? ''}' (inspect)`);
        return EXIT.badInput;
      }
      return runDatasetInspect(positionals[1], values);
    }
    case undefined:
    case 'help':
    case '--help':
      console.log(USAGE);
      return EXIT.ok;
    default:
      console.error(`peft-studio: unknown command '${command}'\n\n${USAGE}`);
      return EXIT.badInput;
  }
};

/** Errors about what the user gave (a model folder, an adapter, a dataset) exit 2; anything else 1. */
const BAD_INPUT: readonly (abstract new (...args: never[]) => Error)[] = [
  ModelLoadError, PeftError, TokenizerError, RunConfigError, DatasetError, ExportError, CompareRunsError,
];
/** node:util parseArgs' errors (an unknown option, a missing value) are unusable input too. */
const isArgumentError = (err: unknown): boolean => String((err as { code?: unknown } | null)?.code ?? '').startsWith('ERR_PARSE_ARGS_');

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`peft-studio: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(BAD_INPUT.some((E) => err instanceof E) || isArgumentError(err) ? EXIT.badInput : EXIT.failure);
  },
);
