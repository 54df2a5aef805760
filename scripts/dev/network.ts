/**
 * The `npm start` network for real tunnels (root, /dev/net/tun, openvpn, iproute2): a host
 * bridge with the region's "public" address, one network namespace per demo router on it,
 * and a forward of the api onto that address so routers can fetch their onboarding script
 * and poll. The gateway and its openvpn server stay in the host namespace (openvpn listens
 * on every address, so on the bridge too); each router is a simulator process in its own
 * namespace whose ovpn-client runs a real openvpn client there.
 *
 * Names carry the tag `bpdev` and this process's pid: a stack killed hard leaves them
 * behind, and the next start removes them (with any process still inside).
 */
import { NetnsLab, netnsMissing, tcpForward, type TcpForward } from '@backplane/testing';

export const DEV_NET_TAG = 'bpdev';
/** The region's public host: the routers dial openvpn here and reach the api's forward here. */
export const DEV_PUBLIC_IP = '198.19.0.1';
const PREFIX = 24;

export interface DevNetwork {
  readonly publicIp: string;
  readonly lab: NetnsLab;
  /** Namespace and address of demo router `i` (0-based). */
  router(i: number): { ns: string; ip: string };
  close(): Promise<void>;
}

/** Why real tunnels cannot run here (undefined: they can). */
export function realTunnelsUnavailable(): string | undefined {
  const missing = netnsMissing();
  return missing.length ? `needs ${missing.join(', ')}` : undefined;
}

/** Removes what an earlier stack killed hard left behind; returns what was removed. */
export function sweepDevNetwork(): string[] {
  return NetnsLab.sweepStale(DEV_NET_TAG);
}

export async function startDevNetwork(routers: number, api: { host: string; port: number }): Promise<DevNetwork> {
  const lab = new NetnsLab(DEV_NET_TAG);
  let forward: TcpForward | undefined;
  const list: { ns: string; ip: string }[] = [];
  try {
    const bridge = lab.bridge(`${DEV_PUBLIC_IP}/${PREFIX}`);
    for (let i = 0; i < routers; i++) {
      const ns = lab.namespace(`r${i + 1}`);
      const ip = `198.19.0.${10 + i}`;
      lab.veth({ bridge }, { ns, address: `${ip}/${PREFIX}` });
      lab.route(ns, 'default', 'via', DEV_PUBLIC_IP);
      list.push({ ns, ip });
    }
    const target = api.host === '0.0.0.0' || api.host === '::' ? '127.0.0.1' : api.host;
    // An api listening on every address answers on the bridge already.
    if (target === api.host) {
      forward = await tcpForward({ host: DEV_PUBLIC_IP, port: api.port }, { host: target, port: api.port });
    }
  } catch (err) {
    await lab.close();
    throw err;
  }
  return {
    publicIp: DEV_PUBLIC_IP,
    lab,
    router: (i) => list[i]!,
    async close() {
      await forward?.close();
      await lab.close();
    },
  };
}
