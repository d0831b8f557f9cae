#!/bin/bash
# Regenerate the golden bucket: a repository on object storage as its objects (config, key,
# data/XX/<pack>.pack, snapshots/<id>, idx/<id>: format/repository.md), copied out of a
# Ceph radosgw that this script starts (tests/cli/ceph.bash; run as root). Two snapshots of
# one stream each, so two index objects (format/index.md "Index objects", version 1). Run
# ONLY when the index object format changes; tests/cli/s3.bats uploads it into a bucket and
# must keep building an empty cache from its index objects and restoring byte for byte.
# With --object-lock: the golden Object Lock bucket, v2-lock-bucket (config version 2,
# format/repository.md "Object Lock"), which tests/cli/objectlock.bats uploads into a
# bucket with Object Lock, restores, and snapshots into. Run it when the config changes.
#   tests/golden/make-golden-bucket.sh [--object-lock]
set -euo pipefail
cd "$(dirname "$0")/../.."
K=${KBVAULT:-$PWD/build/kbvault}
D=tests/golden/v1-bucket
LOCK=()
if [ "${1:-}" = --object-lock ]; then
	D=tests/golden/v2-lock-bucket
	LOCK=(--object-lock-days 1)
	export KBVAULT_OBJECT_LOCK_DAY=60 # retained a minute in the throwaway Ceph
fi
W=$(mktemp -d)
source tests/cli/ceph.bash
trap 'ceph_stop; rm -rf "$W"' EXIT
ceph_start
export KBVAULT_PASSWORD=kbvault-golden XDG_CACHE_HOME="$W/cache"
BUCKET=golden
export KBVAULT_REPO="s3:$S3_ENDPOINT/$BUCKET/repo"
"$K" -q init --kdf-ops 1 --kdf-mem-mib 8 "${LOCK[@]}"
seq 1 20000 > "$W/one.txt"
seq 5000 30000 > "$W/two.txt"
"$K" -q snapshot --host golden --stdin one.txt < "$W/one.txt"
"$K" -q snapshot --host golden --stdin two.txt < "$W/two.txt"
sign=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
	-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
rm -rf "$D"
mkdir -p "$D/objects"
for key in $(curl -sf "${sign[@]}" "$S3_ENDPOINT/$BUCKET?list-type=2&prefix=repo%2F" |
	grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g'); do
	mkdir -p "$D/objects/$(dirname "${key#repo/}")"
	curl -sf "${sign[@]}" -o "$D/objects/${key#repo/}" "$S3_ENDPOINT/$BUCKET/$key"
done
b2sum < "$W/one.txt" | cut -d' ' -f1 > "$D/expected-one.b2"
b2sum < "$W/two.txt" | cut -d' ' -f1 > "$D/expected-two.b2"
ls -R "$D"
