/** An export could not be written; the message names the file (and tensor) at fault. Nothing the user had is touched. */
export class ExportError extends Error {
  override readonly name = 'ExportError';
  constructor(
    message: string,
    readonly file?: string,
    readonly tensor?: string,
  ) {
    super(message);
  }
}
