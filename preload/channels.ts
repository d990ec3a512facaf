// The IPC channels between the preload and main; main's copy is main/app/ipc-channels.ts (the preload may not import
// main/app), and tests/app/preload.test.ts checks that the two agree.
export const IPC_CHANNELS = {
  /** renderer → main (send): one RequestMessage. */
  request: 'peft-studio:api-request',
  /** main → renderer (send): one ResponseMessage as JSON. */
  response: 'peft-studio:api-response',
  /** renderer → main (invoke): PickPathOptions → PickPathReply. */
  pickPath: 'peft-studio:pick-path',
} as const;
