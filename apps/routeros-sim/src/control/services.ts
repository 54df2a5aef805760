/**
 * What a router serves besides the API: REST (www-ssl/www) and SSH, plus the TCP-level
 * fault switches shared by every service. router.ts owns one of these per router and
 * calls start/stop around boots.
 */
import type { Socket } from 'node:net';
import type { SimLogger } from '../api/connection';
import type { Engine } from '../model/engine';
import { RestServer, type RestOptions } from '../rest/server';
import { installSshKeys } from '../ssh/keys';
import { SimSshServer, type SshOptions } from '../ssh/server';
import { OvpnManager, type OvpnOptions } from '../ovpn/manager';
import { FaultyConnections, type RouterFaults } from './faults';

export interface ServicesOptions {
  readonly rest?: boolean | RestOptions;
  readonly ssh?: boolean | SshOptions;
  /** Real openvpn behind enabled ovpn-client interfaces (root + openvpn needed). */
  readonly ovpn?: boolean | OvpnOptions;
}

export interface ServicesDeps {
  readonly engine: Engine;
  readonly host: string;
  readonly faults: RouterFaults;
  readonly logger: SimLogger;
  readonly seed: number;
  readonly identity: () => string;
  /** The API port (it can be ephemeral until the router starts). */
  readonly apiPort?: () => number;
}

export class RouterServices {
  readonly tcp: FaultyConnections;
  readonly rest: RestServer | undefined;
  readonly ssh: SimSshServer | undefined;
  readonly ovpn: OvpnManager | undefined;

  constructor(deps: ServicesDeps, options: ServicesOptions) {
    this.tcp = new FaultyConnections(deps.faults);
    installSshKeys(deps.engine);
    const common = { ...deps, connections: this.tcp };
    if (options.rest) {
      this.rest = new RestServer(common, options.rest === true ? {} : options.rest);
      // Asking for REST is asking for the www-ssl service to be on.
      const svc = deps.engine.state.find('ip/service', { name: 'www-ssl' });
      if (svc) deps.engine.state.update('ip/service', svc, { disabled: 'false' });
    }
    if (options.ssh) {
      this.ssh = new SimSshServer(
        { ...common, keySeed: `${deps.seed}/${deps.identity()}` },
        options.ssh === true ? {} : options.ssh,
      );
    }
    if (options.ovpn) {
      this.ovpn = new OvpnManager(deps.engine, options.ovpn === true ? {} : options.ovpn, deps.logger, () => ({
        host: deps.host,
        ports: [
          ...(deps.apiPort ? [deps.apiPort()] : []),
          ...(this.rest?.httpsPort ? [this.rest.httpsPort] : []),
          ...(this.ssh ? [this.ssh.port] : []),
        ],
      }));
    }
  }

  /** API connections: faults apply to their traffic. */
  guard(socket: Socket): void {
    this.tcp.guard(socket);
  }

  async start(): Promise<void> {
    await this.rest?.start();
    await this.ssh?.start();
    this.ovpn?.start();
  }

  async stop(): Promise<void> {
    await this.ovpn?.stop();
    await this.rest?.stop();
    await this.ssh?.stop();
  }
}
