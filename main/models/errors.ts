/** A model could not be opened; the message names the file (and tensor or key) at fault. */
export class ModelLoadError extends Error {
  override readonly name = 'ModelLoadError';
  constructor(
    message: string,
    readonly file?: string,
  ) {
    super(message);
  }
}
