#!/bin/sh
# Install the Debian packages kbvault needs. Idempotent: does nothing when all are there.
# Needs root (or sudo) when something is missing.
#   deps.sh         build and test
#   deps.sh bench   also the peers and tools the benchmarks compare against
#   deps.sh fuzz    also clang (libFuzzer)
set -eu
PKGS="build-essential pkg-config libzstd-dev libsodium-dev liblmdb-dev libxxhash-dev libjansson-dev
libcmocka-dev libinih-dev libpq-dev libcurl4-openssl-dev bats python3 coreutils util-linux postgresql postgresql-client zstd tar curl"
case "${1:-}" in
bench) PKGS="$PKGS restic borgbackup time gnuplot-nox zstd gzip" ;;
fuzz) PKGS="$PKGS clang" ;;
esac
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "kbvault: installing Debian packages:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || { echo "kbvault: run as root (or install sudo) to install:$missing" >&2; exit 1; }
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
