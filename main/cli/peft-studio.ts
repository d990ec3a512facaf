// peft-studio: the command line over the service. Exit codes: 0 ok, 1 failure, 2 unusable input (bad dataset,
// model or arguments), 130 interrupted.
import { parseArgs } from 'node:util';
import { runDemoCommand } from './demo-command.ts';

export const EXIT = { ok: 0, failure: 1, badInput: 2, interrupted: 130 } as const;

const USAGE = `usage: peft-studio <command> [options]

commands:
  demo [--model PATH] [--out DIR] [--steps N] [--threads N] [--json]
      Trains a LoRA on SmolLM2-135M-Instruct to answer US-capital questions as one JSON object, shows the eval
      loss falling, and prints base and adapter answers side by side on 20 held-out questions.

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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`peft-studio: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(EXIT.failure);
  },
);
