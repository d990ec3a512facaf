/**
 * A tokenizer, chat template or generation config could not be built or used. `file` names the file at fault
 * (or the GGUF / folder the data came from) so the message can point the user at it.
 */
export class TokenizerError extends Error {
  override readonly name: string = 'TokenizerError';
  constructor(
    message: string,
    readonly file?: string,
  ) {
    super(message);
  }
}

/** The model has no chat template, the template is broken, or it raised while rendering (raise_exception). */
export class ChatTemplateError extends TokenizerError {
  override readonly name: string = 'ChatTemplateError';
}
