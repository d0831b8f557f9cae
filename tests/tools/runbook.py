#!/usr/bin/env python3
"""Print, as one shell script, the command blocks of docs/recovery.md marked
<!-- runbook-test: NAME --> for the scenario NAME, in the order the page gives them.

Only machine paths change (each -s OLD=NEW substitution, all in one pass); the commands
are the page's own. Exits 1 when the scenario has no block, so a renamed marker fails the
test instead of silently testing nothing."""
import re
import sys

args = sys.argv[1:]
subs = []
while len(args) > 2 and args[0] == "-s":
    old, new = args[1].split("=", 1)
    subs.append((old, new))
    args = args[2:]
page, name = args
text = open(page).read()
blocks = re.findall(r"<!-- runbook-test: ([a-z0-9-]+)[^>]*-->\s*```sh\n(.*?)```", text, re.S)
script = "".join(body for tag, body in blocks if tag == name)
if not script:
    sys.exit(f"no runbook-test block named {name} in {page}")
if subs:  # all at once, so that a replacement is never replaced again
    table = dict(subs)
    script = re.sub("|".join(re.escape(old) for old, _ in subs), lambda m: table[m.group(0)], script)
print(script, end="")
