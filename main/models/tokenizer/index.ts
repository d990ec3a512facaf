/** Tokenizers, chat templates and generation defaults of a model (HF folder or GGUF). */
export { TokenizerError, ChatTemplateError } from './errors.ts';
export type { AddedTokenJson, TokenizerConfigJson, TokenizerJson } from './formats.ts';
export {
  Tokenizer,
  type AddedToken,
  type DecodeOptions,
  type EncodeOptions,
  type SpecialToken,
  type TokenizerFiles,
  type TokenizerOptions,
} from './tokenizer.ts';
export { StreamDecoder, cleanUpTokenization } from './stream-decoder.ts';
export { loadTokenizerFromFolder, readTokenizerConfig } from './load-folder.ts';
export {
  tokenizerFromGgufMetadata,
  tokenizerFilesFromGguf,
  SUPPORTED_GGUF_PRE_TOKENIZERS,
  type GgufMetadata,
} from './gguf-tokenizer.ts';
export {
  applyChatTemplate,
  chatTemplatesOf,
  hasChatTemplate,
  renderChatTemplateText,
  selectChatTemplate,
  specialTokenVariables,
  type ChatMessage,
  type ChatTemplates,
  type RenderChatOptions,
} from './chat-template.ts';
export {
  GenerationConfigError,
  parseGenerationConfig,
  readGenerationConfig,
  stopTokenIds,
  type GenerationConfig,
} from './generation-config.ts';
