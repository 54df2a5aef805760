import { describe, expect, it } from 'vitest';
import { parseOpenVpnLogLine } from './log';

describe('parseOpenVpnLogLine', () => {
  it.each([
    ['2026-11-22 11:00:00 Initialization Sequence Completed', 'initialized', undefined, undefined],
    ['Need hold release from management interface, waiting...', 'hold-waiting', undefined, undefined],
    ['MANAGEMENT: Client connected from /run/bp/mgmt.sock', 'management', undefined, undefined],
    ['TCP connection established with [AF_INET]192.0.2.2:49152', 'tcp-connection', '192.0.2.2:49152', undefined],
    [
      '192.0.2.2:49152 TLS: Initial packet from [AF_INET]192.0.2.2:49152, sid=1a2b3c4d 5e6f7a8b',
      'tls-initial',
      '192.0.2.2:49152',
      undefined,
    ],
    [
      '192.0.2.2:49152 TLS Error: TLS key negotiation failed to occur within 60 seconds (check your network connectivity)',
      'tls-error',
      '192.0.2.2:49152',
      undefined,
    ],
    [
      '192.0.2.2:49152 VERIFY ERROR: depth=0, error=certificate has expired',
      'verify-error',
      '192.0.2.2:49152',
      undefined,
    ],
    [
      "AAAAsite1/192.0.2.2:49152 SENT CONTROL [AAAAsite1]: 'AUTH_FAILED,denied by gateway' (status=1)",
      'auth-failed',
      '192.0.2.2:49152',
      'AAAAsite1',
    ],
    [
      '192.0.2.2:49152 [AAAAsite1] Peer Connection Initiated with [AF_INET]192.0.2.2:49152',
      'peer-connected',
      '192.0.2.2:49152',
      'AAAAsite1',
    ],
    ['AAAAsite1/192.0.2.2:49152 Connection reset, restarting [0]', 'connection-reset', '192.0.2.2:49152', 'AAAAsite1'],
    [
      'TCP/UDP: Socket bind failed on local address [AF_INET][undef]:8443: Address already in use (errno=98)',
      'bind-error',
      undefined,
      undefined,
    ],
    [
      'ERROR: Cannot open TUN/TAP dev /dev/net/tun: No such file or directory (errno=2)',
      'tun-error',
      undefined,
      undefined,
    ],
    ['Options error: --server directive network/netmask combination is invalid', 'options-error', undefined, undefined],
    ['Exiting due to fatal error', 'exiting', undefined, undefined],
    ['SIGTERM[hard,] received, process exiting', 'exiting', undefined, undefined],
    ['SIGTERM[soft,auth-failure] received, process exiting', 'exiting', undefined, undefined],
    [
      '192.0.2.2:60718 SIGUSR1[soft,connection-reset] received, client-instance restarting',
      'connection-reset',
      '192.0.2.2:60718',
      undefined,
    ],
    ["192.0.2.2:60718 SENT CONTROL [UNDEF]: 'AUTH_FAILED' (status=1)", 'auth-failed', '192.0.2.2:60718', undefined],
    ['something new in 2.7', 'other', undefined, undefined],
  ])('%s', (line, kind, remote, commonName) => {
    const e = parseOpenVpnLogLine(line);
    expect(e.kind).toBe(kind);
    expect(e.remote).toBe(remote);
    expect(e.commonName).toBe(commonName);
    expect(e.line).toBe(line);
  });

  it('strips the timestamp and the client prefix from the message', () => {
    expect(parseOpenVpnLogLine('2026-11-22 11:00:00 u/10.0.0.1:5 Connection reset, restarting [0]').message).toBe(
      'Connection reset, restarting [0]',
    );
  });
});
