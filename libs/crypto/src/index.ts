export { CryptoError, Keyring, type CryptoErrorCode, type KeyMaterial } from './envelope';
