/**
 * SSH keys of a router: the host key (derived from the router's seed and identity, so it
 * is the same after a restart) and `/user ssh-keys` (public keys users log in with:
 * `add user=admin key="ssh-ed25519 AAAA... me@host"` (7.x) or `import public-key-file=...`).
 */
import { createECDH, createHash, createPrivateKey } from 'node:crypto';
import { utils } from 'ssh2';
import type { Engine } from '../model/engine';
import { compileQuery } from '../model/query';
import { formatId, parseId, type Item } from '../model/state';
import { CATEGORY, RosError, type MenuDef } from '../model/types';

/** An ECDSA P-256 host key (SEC1 PEM) from a seed: same seed, same key. */
export function deterministicHostKey(seed: string): string {
  const n = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
  let d = BigInt(`0x${createHash('sha256').update(`routeros-sim ssh host key\0${seed}`).digest('hex')}`) % n;
  if (d === 0n) d = 1n;
  const priv = Buffer.from(d.toString(16).padStart(64, '0'), 'hex');
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(priv);
  const pub = ecdh.getPublicKey();
  const b64 = (b: Buffer): string => b.toString('base64url');
  const key = createPrivateKey({
    key: { kty: 'EC', crv: 'P-256', d: b64(priv), x: b64(pub.subarray(1, 33)), y: b64(pub.subarray(33, 65)) },
    format: 'jwk',
  });
  return key.export({ format: 'pem', type: 'sec1' }).toString();
}

/** `SHA256:base64` fingerprint of an SSH public key blob, as OpenSSH prints it. */
export function sshFingerprint(publicKeyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`;
}

const STR = { t: 'str' } as const;

/** `/user ssh-keys`: a view the engine does not know, registered as commands. */
export const SSH_KEYS: MenuDef = {
  path: 'user/ssh-keys',
  kind: 'list',
  canAdd: true,
  canRemove: true,
  writePolicy: 'policy',
  props: [
    { name: 'user', type: { t: 'ref', menu: 'user' } },
    { name: 'key-type', type: STR, readonly: true },
    { name: 'bits', type: STR, readonly: true },
    { name: 'key-owner', type: STR, readonly: true },
    { name: 'key', type: STR, writeOnly: true },
    { name: 'info', type: STR, readonly: true },
  ],
};

/** Parses an OpenSSH public key line (`ssh-ed25519 AAAA... comment`). */
function parsePublicKey(line: string): { type: string; blob: Buffer; comment: string; bits: string } {
  const parsed = utils.parseKey(line.trim());
  if (parsed instanceof Error || Array.isArray(parsed))
    throw new RosError('unable to load key file (wrong format or bad passphrase)!');
  const comment = line.trim().split(/\s+/).slice(2).join(' ');
  const blob = parsed.getPublicSSH();
  const bits = parsed.type === 'ssh-ed25519' ? '256' : parsed.type.startsWith('ecdsa') ? parsed.type.slice(-3) : '2048';
  return { type: parsed.type, blob, comment, bits };
}

/** Public key blobs (wire format) that may log in as `user`. */
export function userKeys(engine: Engine, user: string): Buffer[] {
  return engine.state
    .items(SSH_KEYS)
    .filter((i) => i.values['user'] === user)
    .map((i) => Buffer.from(i.values['key'] ?? '', 'base64'));
}

function addKey(engine: Engine, user: string, line: string): Item {
  if (!engine.state.find('user', { name: user }))
    throw new RosError('input does not match any value of user', CATEGORY.argument);
  const k = parsePublicKey(line);
  return engine.state.insert(SSH_KEYS, {
    user,
    'key-type': k.type.startsWith('ssh-rsa') ? 'rsa' : k.type.replace(/^ssh-/, ''),
    bits: k.bits,
    'key-owner': k.comment,
    key: k.blob.toString('base64'),
    info: sshFingerprint(k.blob),
  });
}

/** Registers `/user/ssh-keys/{print,add,import,remove}` with a router's engine. */
export function installSshKeys(engine: Engine): void {
  const state = engine.state;
  engine.register('user/ssh-keys/print', (ctx) => {
    engine.requirePolicy(ctx.session, 'read');
    let rows = state.items(SSH_KEYS).map((i) => engine.row(SSH_KEYS, i, ctx.session));
    if (ctx.queries.length) rows = rows.filter(compileQuery(ctx.queries, (_p, v) => v));
    const keep = ctx.args.get('.proplist')?.split(',');
    for (const r of rows)
      ctx.sink.row(keep ? Object.fromEntries(Object.entries(r).filter(([k]) => keep.includes(k))) : r);
    ctx.sink.done();
    return undefined;
  });
  engine.register('user/ssh-keys/add', (ctx) => {
    engine.requirePolicy(ctx.session, 'policy');
    const item = addKey(engine, ctx.args.get('user') ?? '', ctx.args.get('key') ?? '');
    ctx.sink.done(formatId(item.id));
    return undefined;
  });
  engine.register('user/ssh-keys/import', (ctx) => {
    engine.requirePolicy(ctx.session, 'policy');
    const file = state.find('file', { name: ctx.args.get('public-key-file') ?? '' });
    if (!file) throw new RosError('no such item (4)', CATEGORY.missing);
    addKey(engine, ctx.args.get('user') ?? '', file.values['contents'] ?? '');
    ctx.sink.done();
    return undefined;
  });
  engine.register('user/ssh-keys/remove', (ctx) => {
    engine.requirePolicy(ctx.session, 'policy');
    for (const t of (ctx.args.get('.id') ?? ctx.args.get('numbers') ?? '').split(',')) {
      const id = parseId(t.trim());
      if (id === undefined || !state.get(SSH_KEYS, id)) throw new RosError('no such item (4)', CATEGORY.missing);
      state.remove(SSH_KEYS, id);
    }
    ctx.sink.done();
    return undefined;
  });
}
