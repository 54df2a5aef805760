#!/usr/bin/env bash
# Builds openvpn 2.5.11 into /opt/openvpn-legacy/2.5.11 for the RouterOS-6 wire tests
# (test/openvpn/routeros-wire.spec.ts). Why 2.5: with `--ncp-disable` a 2.5 client sends neither
# IV_NCP nor IV_CIPHERS in its peer info — exactly what a RouterOS 6 ovpn-client does — while every
# openvpn 2.6 client always sends IV_CIPHERS (src/openvpn/ssl.c push_peer_info), so 2.6 cannot
# exercise the server's data-ciphers-fallback path. See docs/adr/0064-routeros6-tls.md.
#
# Needs: git, gcc, make, autoconf, automake, libtool, libssl-dev (apt-get install autoconf automake
# libtool libssl-dev). Usage: scripts/build-legacy-openvpn.sh [existing openvpn git checkout or mirror]
set -euo pipefail
VERSION=v2.5.11
PREFIX=/opt/openvpn-legacy/2.5.11
if [[ -x "$PREFIX/sbin/openvpn" ]]; then echo "already built: $PREFIX/sbin/openvpn"; exit 0; fi
SRC=${1:-https://github.com/OpenVPN/openvpn.git}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
git clone --quiet --depth 1 --branch "$VERSION" "$SRC" "$WORK/openvpn"
cd "$WORK/openvpn"
autoreconf -fi >/dev/null
./configure --quiet --prefix="$PREFIX" --disable-lzo --disable-lz4 --disable-plugins \
  --disable-management-ui-only 2>/dev/null || ./configure --quiet --prefix="$PREFIX" --disable-lzo --disable-lz4 --disable-plugins
make -j2 >/dev/null
make install >/dev/null
"$PREFIX/sbin/openvpn" --version | head -1
