/**
 * `npm run sim -- --port 8728 --version 7.16 --identity r1 [--count N] [--tls] ...`
 * Runs one or more simulated routers until SIGINT/SIGTERM; logs JSON lines.
 */
import { parseArgs } from 'node:util';
import { createLogger } from '@backplane/observability';
import type { SimUser } from './model/defaults';
import { startRouter, startRouters } from './router';
import { startControlServer } from './control/endpoint';
import { startFleet } from './fleet/fleet';

const HELP = `RouterOS simulator
  --host ADDR          listen address (default 127.0.0.1)
  --port N             first API port (default 8728; 0 = ephemeral)
  --count N            routers to run (default 1): consecutive ports, or --loopback
  --loopback           give each router its own 127.1.x.y address, all on --port
  --version V          RouterOS version to behave like (default 7.16)
  --identity NAME      /system identity (with --count: NAME-1..N)
  --user U:P[:GROUP]   extra API user (repeatable); admin has an empty password
  --tls                also serve api-ssl on port+1 (anonymous DH, like a router without certificate)
  --tls-cert F --tls-key F   api-ssl with this certificate instead
  --reboot-delay MS    how long the port refuses connections after /system/reboot (default 2000)
  --seed N             reproducible MACs, serials and traffic (default 1)
  --latency MS         delay every reply by MS (fault injection)
  --fleet N            N routers on 127.1.x.y (each on --port, default 8728), started in parallel
  --rest               REST API on www-ssl (self-signed) and www (7.9+); ports in the ready log line
  --ssh                SSH service (host key derived from seed + identity)
  --ssh-port P / --rest-port P   with --fleet: every router's SSH / REST HTTPS on this port
  --control-port P     loopback HTTP control endpoint: GET /routers, POST /routers/<id>/faults,
                       POST /routers/<id>/clock {"advanceMs":N}|{"timeScale":K}, /ingress, /releases
  --release CH=V       what update channel CH offers (repeatable; default: always newer, see version.ts)
  --time-scale K       router seconds per real second (scheduler, uptime; default 1)
  --real-ovpn          enabled ovpn-client interfaces run a real openvpn client (root + openvpn)
  --netns NAME         ... inside this network namespace (implies --real-ovpn; ip netns exec)
  --openvpn PATH       openvpn binary for --real-ovpn (default: openvpn on PATH)
  --state-dir DIR      where tunnel credentials and sockets live while it runs (0700, removed on
                       stop; default <temp>/routeros-sim-<uid>; leftovers of killed runs are swept)
  --log-level L        pino level (default info)`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8728' },
      count: { type: 'string', default: '1' },
      loopback: { type: 'boolean', default: false },
      version: { type: 'string', default: '7.16' },
      identity: { type: 'string' },
      user: { type: 'string', multiple: true, default: [] },
      tls: { type: 'boolean', default: false },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'reboot-delay': { type: 'string', default: '2000' },
      seed: { type: 'string', default: '1' },
      latency: { type: 'string', default: '0' },
      'log-level': { type: 'string', default: 'info' },
      fleet: { type: 'string' },
      rest: { type: 'boolean', default: false },
      ssh: { type: 'boolean', default: false },
      'control-port': { type: 'string' },
      'real-ovpn': { type: 'boolean', default: false },
      'ssh-port': { type: 'string' },
      'rest-port': { type: 'string' },
      netns: { type: 'string' },
      'state-dir': { type: 'string' },
      openvpn: { type: 'string' },
      release: { type: 'string', multiple: true, default: [] },
      'time-scale': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const logger = createLogger({ app: 'routeros-sim', level: values['log-level'] });
  const users: SimUser[] = values.user.map((spec) => {
    const [name, password, group] = spec.split(':');
    if (!name || password === undefined) throw new Error(`--user wants NAME:PASSWORD[:GROUP], got "${spec}"`);
    return { name, password, group: group ?? 'full' };
  });
  const { readFileSync } = await import('node:fs');
  const certFile = values['tls-cert'];
  const keyFile = values['tls-key'];
  const tls = certFile && keyFile ? { cert: readFileSync(certFile), key: readFileSync(keyFile) } : values.tls;
  const count = Number(values.count);
  const releases: Record<string, string> = {};
  for (const spec of values.release) {
    const [channel, version] = spec.split('=');
    if (!channel || !version) throw new Error(`--release wants CHANNEL=VERSION, got "${spec}"`);
    releases[channel] = version;
  }
  const major = values.version.startsWith('6.') ? 'v6' : 'v7';
  const common = {
    ...(values.release.length > 0 ? { releases: { [major]: releases } } : {}),
    host: values.host,
    port: Number(values.port),
    version: values.version,
    users,
    tls,
    rebootDelayMs: Number(values['reboot-delay']),
    seed: Number(values.seed),
    faults: { latencyMs: Number(values.latency) },
    logger,
    rest: values.rest,
    ssh: values.ssh,
    ovpn:
      values.netns || values['real-ovpn']
        ? {
            ...(values.netns ? { netns: values.netns } : {}),
            ...(values['state-dir'] ? { stateDir: values['state-dir'] } : {}),
            ...(values.openvpn ? { openvpnPath: values.openvpn } : {}),
          }
        : false,
  };
  const fleet = values.fleet
    ? await startFleet(Number(values.fleet), {
        ...common,
        port: values.port === '8728' ? 8728 : Number(values.port),
        identity: values.identity ?? 'router',
        ...(values['ssh-port'] ? { sshPort: Number(values['ssh-port']) } : {}),
        ...(values['rest-port'] ? { restPort: Number(values['rest-port']) } : {}),
        // One "router up" line per router would be 1,000 lines: only warnings and debug.
        logger: { info: () => undefined, warn: (o, m) => logger.warn(o, m), debug: (o, m) => logger.debug(o, m) },
      })
    : undefined;
  const routers = fleet
    ? [...fleet.routers]
    : count === 1
      ? [await startRouter({ ...common, identity: values.identity ?? 'MikroTik' })]
      : await startRouters(count, {
          ...common,
          addressing: values.loopback ? 'loopback' : 'ports',
          identity: values.identity ?? 'router',
        });
  const directory = fleet ?? {
    routers,
    get: (id: string) => (/^\d+$/.test(id) ? routers[Number(id) - 1] : routers.find((r) => r.identity === id)),
  };
  if (values['time-scale']) {
    const scale = Number(values['time-scale']);
    for (const r of routers) r.state.setTimeScale(scale);
  }
  const control = values['control-port']
    ? await startControlServer(directory, { port: Number(values['control-port']) })
    : undefined;
  logger.info(
    {
      routers: routers.slice(0, 20).map((r) => ({
        identity: r.identity,
        host: r.host,
        port: r.port,
        tlsPort: r.tlsPort,
        restPort: r.services.rest?.httpsPort,
        sshPort: r.services.ssh?.port,
      })),
      count: routers.length,
      controlPort: control?.port,
    },
    'simulator ready',
  );
  // One shutdown, whatever signals follow (Ctrl-C reaches the whole process group, then a
  // supervisor sends SIGTERM): a second signal must not exit before the tunnels are stopped.
  // Whatever is left in the state directory goes with the process (see state-dir.ts).
  let stopping: Promise<void> | undefined;
  const shutdown = (signal: string): void => {
    logger.info({ signal }, 'stopping');
    stopping ??= Promise.all([...routers.map((r) => r.stop()), control?.close()]).then(() => process.exit(0));
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
