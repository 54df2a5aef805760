/** The tunnel-verifier key is loaded by `loadTunnelVerifierKey` (@backplane/config); this is its DI token. */
export const VERIFIER_KEY = Symbol('VERIFIER_KEY');
