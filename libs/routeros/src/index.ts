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
