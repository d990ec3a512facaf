/** A PEFT config, adapter file or rewrite problem; the message names the field, file or tensor. */
export class PeftError extends Error {
  override readonly name = 'PeftError';
}
