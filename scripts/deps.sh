#!/bin/sh
# Install the Debian packages kbvault needs. Idempotent: does nothing when all are there.
# Needs root (or sudo) when something is missing.
#   deps.sh         build and test (the S3 tests run Debian's Ceph: ceph-mon, ceph-osd,
#                   radosgw, ceph-common)
#   deps.sh bench   also the peers and tools the benchmarks compare against
#   deps.sh fuzz    also clang (libFuzzer)
# The tests also need promtool (Debian's prometheus package): it is unpacked from the
# downloaded package into build/tools/ rather than installed, so that installing it does not
# start a Prometheus server on the machine.
set -eu
TOOLS="$(cd "$(dirname "$0")/.." && pwd)/build/tools"
PKGS="build-essential pkg-config libzstd-dev libsodium-dev liblmdb-dev libxxhash-dev libjansson-dev
libcmocka-dev libinih-dev libpq-dev libcurl4-openssl-dev libssl-dev libexpat1-dev librust-blake3-dev bats python3 coreutils util-linux postgresql postgresql-client zstd tar curl
xxhash b3sum faketime systemd man-db groff-base ceph-mon ceph-osd radosgw ceph-common"
case "${1:-}" in
bench) PKGS="$PKGS restic borgbackup pgbackrest time gnuplot-nox zstd gzip" ;;
fuzz) PKGS="$PKGS clang" ;;
esac
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ -n "$missing" ]; then
	echo "kbvault: installing Debian packages:$missing" >&2
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null 2>&1 || { echo "kbvault: run as root (or install sudo) to install:$missing" >&2; exit 1; }
		SUDO=sudo
	fi
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ "${1:-}" = "" ] && [ ! -x "$TOOLS/promtool" ]; then
	echo "kbvault: fetching promtool from Debian's prometheus package into build/tools" >&2
	tmp=$(mktemp -d)
	chmod 755 "$tmp" # apt's _apt user writes the download
	if ! (cd "$tmp" && apt-get download -qq prometheus 2>/dev/null); then
		$SUDO apt-get update -qq
		(cd "$tmp" && apt-get download -qq prometheus 2>/dev/null)
	fi
	dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
	mkdir -p "$TOOLS"
	cp "$tmp/x/usr/bin/promtool" "$TOOLS/promtool"
	rm -rf "$tmp"
fi
