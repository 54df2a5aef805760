import { createHmac } from 'node:crypto';
import { cmd, concat, cond, find, Script, sub, test as scriptTest } from './builder';
import { propertyName, quote, trusted, variable } from './literal';

/**
 * The scripts a router runs to join the platform (onboarding) and to repair its tunnel
 * (recovery). Built only with the script builder from `@backplane/routeros`: every value
 * (site name, secrets, hosts) is quoted and escaped there, so nothing a user typed can
 * become script text. Both scripts remove their own objects by name before adding them,
 * so running one twice leaves the same configuration as running it once.
 */
export interface TunnelParams {
  /** Site UUID: the ovpn-client interface and the PPP profile are named after it. */
  readonly siteId: string;
  /** Site name, only ever used as a comment value. */
  readonly siteName: string;
  /** Base32 tunnel user (26 characters, see libs/contracts). */
  readonly tunnelUser: string;
  readonly tunnelSecret: string;
  /** Region host and port the router dials (TCP). */
  readonly regionHost: string;
  readonly regionPort: number;
  /** Controller base URL the router reaches (`https://controller.example.com`). */
  readonly controllerUrl: string;
  /** Per-site poll credential (HTTP basic auth user = site id). */
  readonly pollSecret: string;
  readonly pollInterval: string;
  /** Who may reach the router's API service; the gateway side of the tunnel unless told (tests on loopback). */
  readonly apiAllowedFrom?: string;
  /**
   * SHA-256 fingerprint (lowercase hex) of the CA the script fetches: after the import the
   * router compares and refuses a different certificate (so the CA may travel over http).
   */
  readonly caFingerprint?: string;
}

export interface OnboardingParams extends TunnelParams {
  readonly apiUser: string;
  readonly apiPassword: string;
}

/** The management gateway address every tunnel's far side has. */
export const GATEWAY_TUNNEL_ADDRESS = '100.64.0.1';
/**
 * Router-side rights (ADR 0053, docs/security.md): the routine user (jobs, run-command,
 * live views, telemetry) has no `policy` (it cannot create or change users, groups or
 * reset the router) and no `sensitive` (secrets stay hidden in its prints). The elevated
 * user is used only by backups (`sensitive`: an export with secrets) and restore
 * (`policy`: `/system reset-configuration`). The poll scheduler can read, write and fetch:
 * whatever a poll answer imports cannot touch users, reset or reboot.
 */
export const API_GROUP = 'bp-api';
export const API_POLICY = ['api', 'read', 'write', 'reboot', 'test'] as const;
export const ADMIN_USER = 'bp-admin';
export const ADMIN_GROUP = 'bp-admin';
export const ADMIN_POLICY = ['api', 'read', 'write', 'policy', 'reboot', 'test', 'sensitive'] as const;
export const POLL_POLICY = ['read', 'write', 'test'] as const;
export const POLL_SCHEDULER = 'bp-poll';

/**
 * The elevated user's password, derived from the routine user's (so the controller stores
 * one secret per router; neither password is readable on the router).
 */
export function adminPassword(apiPassword: string, siteId: string): string {
  return createHmac('sha256', apiPassword).update(`bp-admin:${siteId}`).digest('base64url').slice(0, 32);
}

/**
 * The credentials for a job that needs the elevated user (backup, restore): `bp-admin`
 * when the site was onboarded by the script (routine user `bp-api`); other credentials
 * (typed in by an admin) are used as they are.
 */
export function elevatedCredentials<T extends { readonly username: string; readonly password: string }>(
  siteId: string,
  creds: T,
): T {
  if (creds.username !== API_GROUP) return creds;
  return { ...creds, username: ADMIN_USER, password: adminPassword(creds.password, siteId) };
}
const CA_FILE = 'bp-ca.crt';

function https(url: string): boolean {
  return url.startsWith('https://');
}

/** The poll the scheduler runs: heartbeat with version, board and identity; imports the answer. */
export function pollScript(p: TunnelParams): string {
  const verify = https(p.controllerUrl);
  return new Script()
    .local('ver', sub(cmd('/system/resource', 'get', {}, propertyName('version'))))
    .local('board', sub(cmd('/system/resource', 'get', {}, propertyName('board-name'))))
    .local('ident', sub(cmd('/system/identity', 'get', {}, propertyName('name'))))
    .do(
      (b) =>
        b
          .command('/tool', 'fetch', {
            url: `${p.controllerUrl}/o/poll/${p.siteId}`,
            user: p.siteId,
            password: p.pollSecret,
            'http-method': 'post',
            'http-header-field': 'Content-Type: text/plain',
            'http-data': concat(variable('ver'), '\n', variable('board'), '\n', variable('ident')),
            'dst-path': 'bp-poll.rsc',
            'check-certificate': verify,
          })
          .command('', 'import', { 'file-name': 'bp-poll.rsc' }),
      (b) => b.log('warning', 'bp: poll failed'),
    )
    .toString();
}

/** Adds the PPP profile and the ovpn-client, with settings for the running RouterOS version. */
export function tunnelObjects(s: Script, p: TunnelParams): void {
  s.command('/interface/ovpn-client', 'remove', {}, find({ name: p.siteId }));
  s.command('/ppp/profile', 'remove', {}, find({ name: p.siteId }));
  s.command('/ppp/profile', 'add', {
    name: p.siteId,
    comment: `Backplane: ${p.siteName}`,
    'use-encryption': 'required',
  });
  const common = {
    name: p.siteId,
    'connect-to': p.regionHost,
    port: p.regionPort,
    mode: 'ip',
    user: p.tunnelUser,
    password: p.tunnelSecret,
    profile: p.siteId,
    auth: 'sha1',
    'add-default-route': false,
    comment: `Backplane: ${p.siteName}`,
  } as const;
  // v6 and 7.0-7.7 spell ciphers `aes256`, TCP only, no certificate verification settings.
  s.local('ver', sub(cmd('/system/resource', 'get', {}, propertyName('version'))));
  s.if(
    scriptTest.match(variable('ver'), '^6\\.'),
    (b) => b.command('/interface/ovpn-client', 'add', { ...common, cipher: 'aes256' }),
    (b) =>
      b.if(
        scriptTest.match(variable('ver'), '^7\\.[0-7]([^0-9]|$)'),
        (c) =>
          c.command('/interface/ovpn-client', 'add', {
            ...common,
            cipher: 'aes256',
            protocol: 'tcp',
            'route-nopull': true,
            'verify-server-certificate': true,
          }),
        (c) =>
          // 7.8+: AES-256-GCM (data channel offload on the gateway); `auth=null` was required with GCM before 7.17
          c.command('/interface/ovpn-client', 'add', {
            ...common,
            cipher: 'aes256-gcm',
            auth: 'null',
            protocol: 'tcp',
            'route-nopull': true,
            'verify-server-certificate': true,
            'tls-version': 'only-1.2',
          }),
      ),
  );
}

function caImport(s: Script, p: TunnelParams): void {
  s.command('/certificate', 'remove', {}, find(cond.match('name', '^bp-ca\\.crt_')));
  s.command('/tool', 'fetch', {
    url: `${p.controllerUrl}/o/ca.crt`,
    'dst-path': CA_FILE,
    'check-certificate': https(p.controllerUrl),
  });
  s.command('/certificate', 'import', { 'file-name': CA_FILE, passphrase: '' });
  if (p.caFingerprint) {
    // A CA swapped on the way is removed again and the script stops before any secret is set.
    s.if(
      trusted(
        `([${cmd('/certificate', 'get', {}, find({ name: `${CA_FILE}_0` })).text} fingerprint]!=${quote(p.caFingerprint.toLowerCase()).text})`,
      ),
      (b) =>
        b
          .command('/certificate', 'remove', {}, find(cond.match('name', '^bp-ca\\.crt_')))
          .line(trusted(`:error ${quote('bp: CA fingerprint mismatch').text}`)),
    );
  }
}

/**
 * Adds the gateway to the API service's allowed addresses, keeping the customer's: an
 * empty list (everyone) becomes the gateway only; a list without it gets it appended.
 */
function apiService(s: Script, p: TunnelParams): void {
  const gw = `${p.apiAllowedFrom ?? GATEWAY_TUNNEL_ADDRESS}/32`;
  const api = find({ name: 'api' });
  s.local('bpapi', '');
  s.line(
    trusted(
      `:foreach a in=[${cmd('/ip/service', 'get', {}, api).text} address] do={:if ([:len $a]>0) do={:set bpapi ($bpapi . $a . ",")}}`,
    ),
  );
  s.if(trusted(`([:typeof [:find ("," . $bpapi) ${quote(`,${gw},`).text}]]!="num")`), (b) =>
    b.command('/ip/service', 'set', { address: concat(variable('bpapi'), gw) }, api),
  );
  s.command('/ip/service', 'set', { disabled: false }, api);
}

function scheduler(s: Script, p: TunnelParams): void {
  s.command('/system/scheduler', 'remove', {}, find({ name: POLL_SCHEDULER }));
  s.command('/system/scheduler', 'add', {
    name: POLL_SCHEDULER,
    interval: p.pollInterval,
    'start-time': 'startup',
    'on-event': pollScript(p),
    policy: [...POLL_POLICY],
    comment: 'Backplane poll',
  });
}

/** The script served at `/o/<token>.rsc`. */
export function onboardingScript(p: OnboardingParams): string {
  const s = new Script();
  s.comment(`Backplane onboarding for site ${p.siteId} (safe to run again)`);
  s.command('/system/scheduler', 'remove', {}, find({ name: POLL_SCHEDULER }));
  // The CA first: a swapped one stops the script before any user or secret is set.
  caImport(s, p);
  s.command('/user', 'remove', {}, find({ name: p.apiUser }));
  s.command('/user/group', 'remove', {}, find({ name: API_GROUP }));
  s.command('/user', 'remove', {}, find({ name: ADMIN_USER }));
  s.command('/user/group', 'remove', {}, find({ name: ADMIN_GROUP }));
  s.command('/user/group', 'add', { name: API_GROUP, policy: [...API_POLICY], comment: 'Backplane' });
  s.command('/user/group', 'add', {
    name: ADMIN_GROUP,
    policy: [...ADMIN_POLICY],
    comment: 'Backplane (backup, restore)',
  });
  s.command('/user', 'add', { name: p.apiUser, group: API_GROUP, password: p.apiPassword, comment: 'Backplane' });
  s.command('/user', 'add', {
    name: ADMIN_USER,
    group: ADMIN_GROUP,
    password: adminPassword(p.apiPassword, p.siteId),
    comment: 'Backplane (backup, restore)',
  });
  tunnelObjects(s, p);
  apiService(s, p);
  scheduler(s, p);
  s.log('info', 'bp: onboarded');
  return s.toString();
}

/**
 * The recovery script of "recreate tunnel": removes every object named after the site and
 * recreates them with the new parameters; re-imports the CA and re-arms the poll.
 */
export function recoveryScript(p: TunnelParams): string {
  const s = new Script();
  s.comment(`Backplane tunnel recovery for site ${p.siteId}`);
  caImport(s, p);
  tunnelObjects(s, p);
  apiService(s, p);
  // The poll scheduler is left alone: this script may be running from it.
  s.log('info', 'bp: tunnel recreated');
  return s.toString();
}
