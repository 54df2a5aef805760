#!/usr/bin/env bash
# Installs an openvpn 2.5 client into /opt/openvpn-legacy/2.5 for the RouterOS-6 wire test
# (test/openvpn/routeros-wire.spec.ts). Why 2.5: with `--ncp-disable` a 2.5 client sends neither
# IV_NCP nor IV_CIPHERS in its peer info — what a RouterOS 6 ovpn-client does — while every
# openvpn 2.6 client always sends IV_CIPHERS (src/openvpn/ssl.c push_peer_info), so 2.6 cannot
# exercise the server's data-ciphers-fallback path. See docs/adr/0064-routeros6-tls.md.
#
# Where from: Debian 11 (bullseye) ships openvpn 2.5.1 (+ security fixes) built against
# OpenSSL 1.1.1. Its .debs — openvpn, libssl1.1 and libpkcs11-helper1 (the bookworm build of the
# latter links OpenSSL 3) — are fetched from Debian's archive with apt, verified by apt against
# the Debian archive keyring, and unpacked with `dpkg -x` (nothing is installed; the system's apt
# configuration and dpkg database are untouched: apt runs with a private sources list, lists and
# cache). `$PREFIX/openvpn` is a wrapper that runs the unpacked binary with the unpacked
# libraries. The other libraries it needs (liblzo2, liblz4, libsystemd, libcap) come from the
# system's own openvpn package, which .ci/run installs first.
#
# Idempotent: exits at once when the wrapper already runs. Needs root (writes /opt), apt-get,
# dpkg and the debian-archive-keyring. Only Debian's package repositories are contacted.
# Env: LEGACY_OPENVPN_PREFIX (default /opt/openvpn-legacy/2.5),
#      LEGACY_OPENVPN_MIRRORS (default "http://deb.debian.org/debian http://archive.debian.org/debian":
#      tried in order; bullseye moves to archive.debian.org once its LTS ends).
set -euo pipefail
PREFIX=${LEGACY_OPENVPN_PREFIX:-/opt/openvpn-legacy/2.5}
MIRRORS=${LEGACY_OPENVPN_MIRRORS:-http://deb.debian.org/debian http://archive.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
WRAPPER="$PREFIX/openvpn"

if [[ -x "$WRAPPER" ]] && "$WRAPPER" --version 2>/dev/null | grep -q '^OpenVPN 2\.5\.'; then
  echo "legacy openvpn: $("$WRAPPER" --version | head -1 | cut -d' ' -f1-2) at $WRAPPER (cached)"
  exit 0
fi
[[ -r "$KEYRING" ]] || { echo "legacy openvpn: $KEYRING missing (apt-get install debian-archive-keyring)" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/debs"
APT=(-o "Dir::Etc::SourceList=$WORK/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache=$WORK/cache" -o Dir::State::status=/dev/null
  -o APT::Sandbox::User=root -o Debug::NoLocking=1 -o Acquire::Retries=3 -qq)

fetched=
for mirror in $MIRRORS; do
  security=${mirror%/debian}/debian-security
  {
    echo "deb [signed-by=$KEYRING] $mirror bullseye main"
    echo "deb [signed-by=$KEYRING] $security bullseye-security main"
  } >"$WORK/sources.list"
  if apt-get "${APT[@]}" update >"$WORK/update.log" 2>&1 &&
    (cd "$WORK/debs" && apt-get "${APT[@]}" download openvpn libssl1.1 libpkcs11-helper1 >"$WORK/download.log" 2>&1); then
    fetched=$mirror
    break
  fi
  echo "legacy openvpn: $mirror failed: $(tail -2 "$WORK/update.log" "$WORK/download.log" 2>/dev/null | tr '\n' ' ')" >&2
  rm -f "$WORK"/debs/*.deb
done
[[ -n "$fetched" ]] || { echo "legacy openvpn: no mirror served bullseye's openvpn" >&2; exit 1; }

STAGE="$PREFIX.tmp.$$"
rm -rf "$STAGE"
mkdir -p "$STAGE/root"
for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$STAGE/root"; done
# An empty OpenSSL configuration: the system's openssl.cnf is written for OpenSSL 3 (providers),
# and the client should show OpenSSL 1.1.1's own defaults, not the host's policy.
: >"$STAGE/openssl.cnf"
libdir=$(dirname "$(find "$STAGE/root" -name 'libssl.so.1.1' | head -1)")
libdir=${libdir#"$STAGE/"}
cat >"$STAGE/openvpn" <<EOF
#!/bin/sh
# openvpn 2.5 from Debian bullseye (unpacked by scripts/legacy-openvpn.sh from $fetched)
export LD_LIBRARY_PATH="$PREFIX/$libdir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export OPENSSL_CONF="$PREFIX/openssl.cnf"
exec "$PREFIX/root/usr/sbin/openvpn" "\$@"
EOF
chmod 0755 "$STAGE/openvpn"
ls "$WORK"/debs/*.deb | xargs -n1 basename >"$STAGE/PACKAGES"
rm -rf "$PREFIX"
mv "$STAGE" "$PREFIX"
"$WRAPPER" --version | head -1 >/dev/null || { echo "legacy openvpn: $WRAPPER does not run" >&2; exit 1; }
echo "legacy openvpn: $("$WRAPPER" --version | head -1 | cut -d' ' -f1-2) at $WRAPPER ($(tr '\n' ' ' <"$PREFIX/PACKAGES"))"
