# Objects of a test bucket, signed by curl (SigV4): for tests that look at or damage what
# a repository on S3 holds. Needs S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
# (ceph.bash) and BUCKET. Keys are below the bucket ("prod/data/3f/3f….pack").
S3_EMPTY_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

s3_curl() {
	curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$@"
}

s3_urlencode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

# The listing of the keys under a prefix, as ListObjectsV2's XML (up to 1000 keys).
s3_listing() {
	s3_curl -H "x-amz-content-sha256: $S3_EMPTY_SHA" "$S3_ENDPOINT/$BUCKET?list-type=2&prefix=$(s3_urlencode "${1:-}")"
}

# Keys in the bucket under a prefix.
s3_keys() { s3_listing "${1:-}" | grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g'; }

# Bytes of the objects under a prefix.
s3_bytes() { s3_listing "${1:-}" | grep -o '<Size>[0-9]*</Size>' | sed 's/<[^>]*>//g' | awk '{s += $1} END {print s + 0}'; }

# Fetch, store and delete one object: s3_get KEY FILE, s3_put KEY FILE, s3_del KEY.
s3_get() { s3_curl -f -H "x-amz-content-sha256: $S3_EMPTY_SHA" -o "$2" "$S3_ENDPOINT/$BUCKET/$1"; }
s3_put() { s3_curl -f -H "x-amz-content-sha256: $(sha256sum "$2" | cut -d' ' -f1)" -T "$2" "$S3_ENDPOINT/$BUCKET/$1"; }
s3_del() { s3_curl -f -X DELETE -H "x-amz-content-sha256: $S3_EMPTY_SHA" "$S3_ENDPOINT/$BUCKET/$1"; }

# Versions under a prefix (a versioned bucket: Object Lock), one "KEY VERSIONID" per line,
# delete markers as "KEY VERSIONID marker".
s3_versions() {
	s3_curl -H "x-amz-content-sha256: $S3_EMPTY_SHA" "$S3_ENDPOINT/$BUCKET?prefix=$(s3_urlencode "${1:-}")&versions=" |
		python3 -c '
import sys, xml.etree.ElementTree as ET
ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
for e in ET.fromstring(sys.stdin.read()):
    tag = e.tag.replace(ns, "")
    if tag in ("Version", "DeleteMarker"):
        k, v = e.find(ns + "Key").text, e.find(ns + "VersionId").text
        print(k, v, "marker" if tag == "DeleteMarker" else "")
'
}

# The Object Lock retention of an object's current version: "MODE EPOCH" (empty: none).
s3_retention() {
	s3_curl -I -H "x-amz-content-sha256: $S3_EMPTY_SHA" "$S3_ENDPOINT/$BUCKET/$1" | tr -d '\r' | python3 -c '
import sys, datetime
h = {}
for line in sys.stdin:
    if ":" in line:
        k, v = line.split(":", 1)
        h[k.strip().lower()] = v.strip()
m, u = h.get("x-amz-object-lock-mode"), h.get("x-amz-object-lock-retain-until-date")
if m and u:
    t = datetime.datetime.strptime(u[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    print(m, int(t.timestamp()))
'
}

# A fault-injecting proxy in front of radosgw (s3proxy.py): $PROXY is its endpoint, the
# rules go into $TMPD/rules. The test file's teardown kills $PROXY_PID.
s3proxy_start() {
	: > "$TMPD/rules"
	python3 "$BATS_TEST_DIRNAME/s3proxy.py" "${S3_ENDPOINT##*:}" "$TMPD/rules" "$TMPD/proxy.port" 3>&- &
	PROXY_PID=$!
	for _ in $(seq 100); do [ -f "$TMPD/proxy.port" ] && break; sleep 0.1; done
	PROXY="http://127.0.0.1:$(cat "$TMPD/proxy.port")"
}
