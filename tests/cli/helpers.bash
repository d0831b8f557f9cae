# Shared set-up for the CLI tests: a scratch directory, a fast-KDF repository, helpers.
# KBVAULT (the binary) and GENDUMP (the dump generator) come from the Makefile.

setup_repo() {
	export TMPD="$BATS_TEST_TMPDIR"
	export KBVAULT_REPO="$TMPD/repo"
	printf 'correct horse battery staple\n' > "$TMPD/pw"
	chmod 600 "$TMPD/pw"
	export KBVAULT_PASSWORD_FILE="$TMPD/pw"
	unset KBVAULT_PASSWORD
	"$KBVAULT" init -q --kdf-ops 1 --kdf-mem-mib 8 "$@"
}

kbv() { "$KBVAULT" "$@"; }

# The n-th snapshot id (1 = oldest) from the JSON listing.
snap_id() { kbv snapshots --json | python3 -c "import json,sys; print(json.load(sys.stdin)[$1-1]['id'])"; }
snap_count() { kbv snapshots --json | python3 -c "import json,sys; print(len(json.load(sys.stdin)))"; }

# A pack file of the repository (the largest, so it holds data).
a_pack() { find "$KBVAULT_REPO/data" -name '*.pack' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2; }

# Flip one byte at an offset of a file.
flip_byte() {
	local f=$1 off=$2
	local b
	b=$(dd if="$f" bs=1 skip="$off" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
	printf "$(printf '\\%03o' $(((b ^ 0x55) & 255)))" | dd of="$f" bs=1 seek="$off" count=1 conv=notrunc 2>/dev/null
}
