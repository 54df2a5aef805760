/**
 * One real openvpn client process behind an ovpn-client interface: files in its own
 * directory under the simulator's state directory (0700; every file 0600, removed on stop), `[ip netns exec <ns>] openvpn --config ...`, its log
 * parsed for "Initialization Sequence Completed" (connected) and the tunnel address, and
 * restarts with a delay while the interface stays enabled (as a router keeps retrying).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderOvpnClientConfig } from './config';

export interface OvpnProcessOptions {
  /** Where its files go (a directory of their own is made inside; see state-dir.ts). */
  readonly stateDir: string;
  /** Network namespace to run in (`ip netns exec`). */
  readonly netns?: string;
  readonly openvpnPath?: string;
  /** Delay before starting again after openvpn exited (default 2 s). */
  readonly restartDelayMs?: number;
  readonly onStatus: (status: { connected: boolean; address?: string; device?: string }) => void;
  readonly onLog?: (line: string) => void;
}

export class OvpnProcess {
  private child: ChildProcess | undefined;
  private readonly dir: string;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private exited: Promise<void> = Promise.resolve();
  connected = false;
  address: string | undefined;
  device: string | undefined;
  readonly log: string[] = [];

  constructor(
    readonly values: Readonly<Record<string, string>>,
    caPems: readonly string[],
    private readonly options: OvpnProcessOptions,
  ) {
    this.dir = mkdtempSync(join(options.stateDir, 'ovpn-'));
    const authFile = join(this.dir, 'auth');
    writeFileSync(authFile, `${values['user'] ?? ''}\n${values['password'] ?? ''}\n`, { mode: 0o600 });
    let caFile: string | undefined;
    if (caPems.length) {
      caFile = join(this.dir, 'ca.pem');
      writeFileSync(caFile, `${caPems.join('\n')}\n`, { mode: 0o600 });
    }
    writeFileSync(
      join(this.dir, 'client.conf'),
      `${renderOvpnClientConfig(values, { authFile, caFile }).join('\n')}\n`,
      {
        mode: 0o600,
      },
    );
  }

  /** Its directory (auth, CA and configuration files). */
  get directory(): string {
    return this.dir;
  }

  /** The configuration file (for tests and logs). */
  get configPath(): string {
    return join(this.dir, 'client.conf');
  }

  start(): void {
    if (this.stopped || this.child) return;
    const openvpn = this.options.openvpnPath ?? 'openvpn';
    const argv = ['--config', this.configPath];
    const [cmd, args] = this.options.netns
      ? ['ip', ['netns', 'exec', this.options.netns, openvpn, ...argv]]
      : [openvpn, argv];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let buffered = '';
    const onData = (d: Buffer): void => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) this.onLine(line);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', (err) => {
        this.onLine(`spawn failed: ${err.message}`);
        resolve();
      });
    });
    void this.exited.then(() => {
      this.child = undefined;
      this.setConnected(false);
      if (!this.stopped) {
        this.restartTimer = setTimeout(() => {
          this.restartTimer = undefined;
          this.start();
        }, this.options.restartDelayMs ?? 2000);
      }
    });
  }

  private onLine(line: string): void {
    this.log.push(line);
    if (this.log.length > 200) this.log.shift();
    this.options.onLog?.(line);
    const addr = /net_addr_v4_add: (\d+\.\d+\.\d+\.\d+)\/\d+ dev (\S+)/.exec(line);
    if (addr) {
      this.address = addr[1];
      this.device = addr[2];
    }
    if (line.includes('Initialization Sequence Completed')) this.setConnected(true);
    else if (/SIGUSR1\[|Restart pause|Connection reset|AUTH_FAILED|Inactivity timeout/.test(line))
      this.setConnected(false);
  }

  private setConnected(up: boolean): void {
    if (this.connected === up) return;
    this.connected = up;
    if (!up) this.address = undefined;
    this.options.onStatus({
      connected: up,
      ...(this.address ? { address: this.address } : {}),
      ...(this.device ? { device: this.device } : {}),
    });
  }

  /** Ends openvpn (SIGTERM, SIGKILL after 3 s) and removes its files. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 3000);
      await this.exited;
      clearTimeout(kill);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
