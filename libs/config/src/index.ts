export { defaultCell, VARS, type VarName, type VarSpec, type VarValue } from './schema';
export { ConfigError, parseVars, processEnv, secretNames, type ConfigOf, type Env } from './load';
export {
  loadSecrets,
  loadTunnelVerifierKey,
  parseEncryptionKeys,
  SecretsError,
  type EncryptionKey,
  type Secrets,
  type SecretsInput,
} from './secrets';
export {
  loadApiConfig,
  loadGatewayConfig,
  loadWorkerConfig,
  secretsFor,
  type ApiConfig,
  type GatewayConfig,
  type WorkerConfig,
} from './apps';
