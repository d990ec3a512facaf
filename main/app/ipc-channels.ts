// The IPC channels between the preload and main. The preload may not import main/app (eslint layering), so it keeps
// its own copy (preload/channels.ts); tests/app/preload.test.ts checks that the two agree.
export const IPC_CHANNELS = {
  /** renderer → main (send): one RequestMessage. */
  request: 'peft-studio:api-request',
  /** main → renderer (send): one ResponseMessage as JSON. */
  response: 'peft-studio:api-response',
  /** renderer → main (invoke): PickPathOptions → PickPathReply. */
  pickPath: 'peft-studio:pick-path',
} as const;
