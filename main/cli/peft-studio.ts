// peft-studio: the command line over the service. Exit codes: 0 ok, 1 failure, 2 unusable input (bad dataset,
// model or arguments), 130 interrupted.
import { parseArgs } from 'node:util';
import { ModelLoadError } from '../models/errors.ts';
import { TokenizerError } from '../models/tokenizer/index.ts';
import { PeftError } from '../peft/errors.ts';
import { RunConfigError } from '../service/run-config.ts';
import { DatasetError } from '../train/dataset/index.ts';
import { runChatCommand } from './chat-command.ts';
import { runDatasetInspect } from './dataset-command.ts';
import { runDemoCommand } from './demo-command.ts';
import { runRunsCommand, runTrainCommand } from './train-command.ts';

export const EXIT = { ok: 0, failure: 1, badInput: 2, interrupted: 130 } as const;

const USAGE = `usage: peft-studio <command> [options]

commands:
  demo [--model PATH] [--out DIR] [--steps N] [--threads N] [--json]
      Trains a LoRA on SmolLM2-135M-Instruct to answer US-capital questions as one JSON object, shows the eval
      loss falling, and prints base and adapter answers side by side on 20 held-out questions.

  chat --model PATH [--adapter DIR]... [--max-tokens N] [--temperature T] [--seed N] [--system TEXT] [--json] PROMPT
      The base model and up to 4 adapters (PEFT folders) answer PROMPT side by side, in one batched pass.

  train --config FILE [--db PATH] [--json]
      Trains as the YAML/JSON config says (model, dataset, method = a PEFT adapter_config, training, output),
      recording the run, its metrics, checkpoints and adapter in the run history. Ctrl-C pauses with a checkpoint.
  runs [list | show ID] [--db PATH] [--json]
  dataset inspect FILE [--format F] [--model M] [--json]
      Format, rows, token statistics (with --model) and every problem as FILE:LINE: message; exit 2 if unusable.

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
      const { values } = parseArgs({ args: rest, options: { config: { type: 'string' }, db: { type: 'string' }, json: { type: 'boolean' } } });
      return runTrainCommand(values);
    }
    case 'runs': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { db: { type: 'string' }, json: { type: 'boolean' } } });
      return runRunsCommand(positionals[0], values, positionals[1]);
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
const BAD_INPUT: readonly (abstract new (...args: never[]) => Error)[] = [ModelLoadError, PeftError, TokenizerError, RunConfigError, DatasetError];

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`peft-studio: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(BAD_INPUT.some((E) => err instanceof E) ? EXIT.badInput : EXIT.failure);
  },
);
