export {
  DEFAULT_LIMITS,
  encodedLengthSize,
  encodeLength,
  encodeSentence,
  MAX_LENGTH,
  ProtocolError,
  readLength,
  SentenceDecoder,
  writeLength,
  type DecoderLimits,
  type Sentence,
  type Word,
} from './codec';
export {
  ANONYMOUS_DH_CIPHERS,
  RouterOsClient,
  type AttributeValue,
  type Attributes,
  type CommandOptions,
  type CommandResult,
  type LoginMethod,
  type RouterOsClientOptions,
  type RouterOsClientStats,
  type RouterOsStream,
  type RouterOsTlsOptions,
  type StreamOptions,
} from './client';
export {
  RouterOsAbortError,
  RouterOsConnectionError,
  RouterOsError,
  RouterOsFatalError,
  RouterOsLoginError,
  RouterOsTimeoutError,
  RouterOsTrapError,
  TrapCategory,
  type RouterOsConnectionErrorCode,
} from './errors';
export { challengeResponse } from './login';
export {
  allOf,
  anyOf,
  has,
  lacks,
  not,
  Query,
  rawQuery,
  where,
  type QueryNode,
  type QueryOperator,
  type QueryValue,
} from './query';
export { boolOr, parseBool, rawValue, rowOf, type Row } from './values';
