#!/usr/bin/env python3
"""Turn bench/results/synthetic-<mode>*.csv into bench/results/synthetic-<mode>.md (bench/run.sh)."""
import csv, os, subprocess, sys

prefix = sys.argv[1] if len(sys.argv) > 1 else "synthetic-quick"
mode = prefix.split("-")[-1]
d = os.path.join(os.path.dirname(__file__), "results")
rows = list(csv.DictReader(open(f"{d}/{prefix}.csv")))
series = list(csv.DictReader(open(f"{d}/{prefix}-series.csv")))
sweep = list(csv.DictReader(open(f"{d}/{prefix}-chunk-sweep.csv")))
micro = list(csv.DictReader(open(f"{d}/{prefix}-micro.csv")))

def get(tool, op, key):
    for r in rows:
        if r["tool"] == tool and r["operation"] == op:
            return float(r[key])
    return float("nan")

tools = []
for r in rows:
    if r["tool"] not in tools:
        tools.append(r["tool"])
out = []
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return "?"
out.append(f"# Benchmark results ({mode})\n")
mem = sh("free -g | awk '/Mem/ {print $2}'")
restic_v = sh("restic version | cut -d' ' -f1-2")
gzip_v = sh("gzip --version | head -1")
out.append(f"Machine: {sh('nproc')} cores, {mem} GiB RAM, Linux {sh('uname -r')}. Versions: "
           f"{sh('$KBVAULT version')}, {restic_v}, {sh('borg --version')}, {gzip_v}.\n")
out.append(f"Command: `make bench-synthetic{'' if mode == 'full' else '-quick'}` (bench/run.sh {mode}). Input: `bench/gendump` "
           "synthetic pg_dump SQL (prose documents, embeddings as real[], pgbench accounts).\n")
big = int(rows[0]["input_bytes"])
out.append(f"## One dump of {big/1e6:.0f} MB: snapshot, re-snapshot, lightly edited, restore\n")
out.append("| tool | first MB/s | unchanged MB/s | edited MB/s | restore MB/s | restore verified | peak RSS MiB | repo after 3 snapshots (MB) |")
out.append("|---|---|---|---|---|---|---|---|")
for t in tools:
    rss = max(get(t, op, "peak_rss_kb") for op in ("first", "unchanged", "edited", "restore")) / 1024
    ver = [r["verified"] for r in rows if r["tool"] == t and r["operation"] == "restore"]
    out.append(f"| {t} | {get(t,'first','mb_per_s'):.0f} | {get(t,'unchanged','mb_per_s'):.0f} | "
               f"{get(t,'edited','mb_per_s'):.0f} | {get(t,'restore','mb_per_s'):.0f} | {ver[0] if ver else ''} | "
               f"{rss:.0f} | {get(t,'edited','repo_bytes')/1e6:.1f} |")
out.append("")
k, r = "kbvault", "restic"
out.append("Ratios in the same run (kbvault / restic): first snapshot throughput "
           f"×{get(k,'first','mb_per_s')/get(r,'first','mb_per_s'):.2f}, unchanged ×{get(k,'unchanged','mb_per_s')/get(r,'unchanged','mb_per_s'):.2f}, "
           f"restore ×{get(k,'restore','mb_per_s')/get(r,'restore','mb_per_s'):.2f}, peak RSS ×"
           f"{max(get(k,o,'peak_rss_kb') for o in ('first','unchanged','edited','restore'))/max(get(r,o,'peak_rss_kb') for o in ('first','unchanged','edited','restore')):.2f}, "
           f"repository bytes ×{get(k,'edited','repo_bytes')/get(r,'edited','repo_bytes'):.2f}.\n")

days = max(int(s["day"]) for s in series)
out.append(f"## {days} nights of an evolving database: repository bytes\n")
names = []
for s in series:
    if s["tool"] not in names:
        names.append(s["tool"])
out.append("| night | input MB | " + " | ".join(names) + " |")
out.append("|---|---|" + "---|" * len(names))
for day in range(1, days + 1):
    vals = {s["tool"]: int(s["repo_bytes"]) for s in series if int(s["day"]) == day}
    inp = [int(s["input_bytes"]) for s in series if int(s["day"]) == day][0]
    out.append(f"| {day} | {inp/1e6:.0f} | " + " | ".join(f"{vals[n]/1e6:.1f}" for n in names) + " |")
last = {s["tool"]: int(s["repo_bytes"]) for s in series if int(s["day"]) == days}
out.append("")
out.append("Columns: the default churn (calibrated to a real series, see bench/gendump.c) for every tool; "
           "`kbvault-pk-order`: the same nights with rows in primary-key order (what the PostgreSQL source's "
           "native mode will write); `*-heavy`: ten times the pgbench updates (~9x the change sites).\n")
out.append(f"After {days} nights kbvault holds ×{last['kbvault']/last['restic']:.2f} of restic's bytes "
           f"(×{last['kbvault-pk-order']/last['restic']:.2f} with rows in primary-key order), "
           f"×{last['kbvault']/last['borg-default']:.2f} of borg's (default chunker), "
           f"×{last['kbvault']/last['borg-small']:.2f} of borg's with 8 KiB chunks, and "
           f"×{last['kbvault']/last['gzip']:.2f} of the nightly gzip files. Heavy churn: "
           f"×{last['kbvault-heavy']/last['restic-heavy']:.2f} of restic's.\n")

out.append("## Chunk size sweep (kbvault, same nights)\n")
out.append("| avg chunk | repo MB | packs MB | index MB | chunks | dedup | seconds |")
out.append("|---|---|---|---|---|---|---|")
for s in sweep:
    out.append(f"| {int(s['chunk_avg'])//1024} KiB | {int(s['repo_bytes'])/1e6:.1f} | {int(s['data_bytes'])/1e6:.1f} | "
               f"{int(s['index_bytes'])/1e6:.1f} | {s['chunks']} | ×{float(s['dedup_ratio']):.2f} | {float(s['seconds']):.1f} |")
out.append("")
out.append("## Microbenchmarks (one core)\n")
out.append("| stage | MB/s |")
out.append("|---|---|")
for m in micro:
    out.append(f"| {m['stage']} | {float(m['MB_per_s']):.0f} |")
out.append("")
open(f"{d}/{prefix}.md", "w").write("\n".join(out) + "\n")
print("\n".join(out))
