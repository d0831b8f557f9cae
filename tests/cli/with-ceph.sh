#!/bin/bash
# Run a command against object storage: a one-node Ceph S3 gateway is started first
# (ceph.bash: S3_ENDPOINT and the credentials are exported), KBV_TEST_BACKEND=s3 tells the
# CLI suites to put their repositories in it (helpers.bash), and Ceph is stopped after.
#   tests/cli/with-ceph.sh bats tests/cli/basic.bats
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=ceph.bash
. tests/cli/ceph.bash
ceph_start > /dev/null || { echo "with-ceph: the S3 gateway did not start" >&2; exit 1; }
trap 'ceph_stop > /dev/null 2>&1' EXIT
KBV_TEST_BACKEND=s3 "$@"
