#!/usr/bin/env python3
"""bench/results/kb-<mode>-*.csv -> kb-<mode>.md and kb-<mode>-bars.csv (bench/kb.sh)."""
import csv, json, os, subprocess, sys

mode, rewrite, keep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
P = f"{d}/kb-{mode}"
series = list(csv.DictReader(open(f"{P}-series.csv")))
ops = list(csv.DictReader(open(f"{P}-ops.csv")))
study = json.load(open(f"{P}-chunking.json"))
micro = list(csv.DictReader(open(f"{P}-micro.csv")))
threads = list(csv.DictReader(open(f"{P}-threads.csv")))
sh = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
tools = []
for r in series:
    if r["tool"] not in tools:
        tools.append(r["tool"])
days = sorted({int(r["day"]) for r in series})
at = {(r["tool"], int(r["day"])): r for r in series}
mb = lambda b: float(b) / 1e6
L = [f"# kbvault against restic, borg and nightly gzip on an evolving knowledge base ({mode})", ""]
mem = sh("free -g | awk '/Mem/ {print $2}'")
restic_v = sh("restic version | cut -d' ' -f1-2")
L.append(f"Machine: {sh('nproc')} cores, {mem} GiB, Linux {sh('uname -r')}. "
         f"Versions: {sh('$KBVAULT version')}, {restic_v}, {sh('borg --version')}, "
         f"{sh('gzip --version | head -1')}, {sh('pg_dump --version')}.")
L.append("")
L.append(f"Command: `make bench{'' if mode == 'full' else '-quick'}` (bench/kb.sh {mode}). Each night: a real PostgreSQL "
         "knowledge base (documents, chunks with real[] embeddings, entities, relations, pgbench) changes "
         "(edits inside ~2% of bodies with re-embedding, ~1% inserts, ~0.5% deletes, pgbench traffic, VACUUM; "
         f"CLUSTER on night {rewrite + 1}), the Qdrant-like collections rewrite 2% of a segment and grow, the Neo4j-like "
         "store gets 200 edits. The peers back up the night's three files (pg_dump -Fp, the Qdrant tar, the DZV1+zstd "
         "dump); `kbvault` does the same; `kbvault-native` and `kbvault-pg_dump` take the database through the "
         "PostgreSQL source (native mode: rows in key order; pg_dump mode: stock pg_dump) and the same two files.")
def night_table(title, cell, input_column=False):
    """One row per night, one column per tool; cell(tool, night) gives the text."""
    L.extend(["", title, ""])
    L.append("| night | " + ("input MB | " if input_column else "") + " | ".join(tools) + " |")
    L.append("|---|" + ("---|" if input_column else "") + "---|" * len(tools))
    for dd in days:
        first = f"{mb(at[('kbvault', dd)]['input_bytes']):.0f} | " if input_column else ""
        L.append(f"| {dd} | {first}" + " | ".join(cell(t, dd) for t in tools) + " |")


night_table("## Repository bytes after each night (MB)", lambda t, dd: f"{mb(at[(t, dd)]['repo_bytes']):.1f}", True)
night_table("Ingest MB/s each night (input bytes over wall time; peak RSS in the CSV):",
            lambda t, dd: f"{int(at[(t, dd)]['input_bytes']) / float(at[(t, dd)]['seconds']) / 1e6:.0f}")
night_table("All input so far over repository bytes (dedup x compression) each night:",
            lambda t, dd: f"x{sum(int(at[(t, e)]['input_bytes']) for e in days if e <= dd) / int(at[(t, dd)]['repo_bytes']):.2f}")
last = days[-1]
total_in = {t: sum(int(at[(t, dd)]["input_bytes"]) for dd in days) for t in tools}
L.append("")
L.append("| tool | total after last night MB | vs restic | all input / stored (dedup x compression) | mean ingest MB/s | peak RSS MiB |")
L.append("|---|---|---|---|---|---|")
bars = []
rest = int(at[("restic", last)]["repo_bytes"])
for t in tools:
    rb = int(at[(t, last)]["repo_bytes"])
    secs = sum(float(at[(t, dd)]["seconds"]) for dd in days)
    rss = max(int(at[(t, dd)]["peak_rss_kb"]) for dd in days) / 1024
    mbs = total_in[t] / secs / 1e6 if secs else 0
    L.append(f"| {t} | {mb(rb):.1f} | x{rb / rest:.2f} | x{total_in[t] / rb:.2f} | {mbs:.1f} | {rss:.0f} |")
    bars.append([t, mbs, rss])
best = min(("kbvault-native", "kbvault-pg_dump", "kbvault"), key=lambda t: int(at[(t, last)]["repo_bytes"]))
ratio = int(at[(best, last)]["repo_bytes"]) / rest
L.append("")
L.append(f"Aim: kbvault at most a third of restic's bytes after ten nights. This run, after {len(days)} nights: "
         f"{best} x{ratio:.2f} of restic: {'met' if ratio <= 1 / 3 else 'NOT met'}.")
L.append("")
L.append("Ingest MB/s for kbvault-native and kbvault-pg_dump include dumping the database (pg_dump or COPY); "
         "the other tools read files already on disk. Peak RSS is the largest of the nights.")
L.append("")
L.append("## Restore of the last night, and retention")
L.append("")
L.append("| tool | operation | MB/s | seconds | peak RSS MiB | repository MB after | verified |")
L.append("|---|---|---|---|---|---|---|")
rmbs = {}
for r in ops:
    if r["operation"] in ("restore", "restore-db"):
        rmbs.setdefault(r["tool"], float(r["mb_per_s"]))
    L.append(f"| {r['tool']} | {r['operation'] if r['operation'] != 'gc' else f'gc, keep last {keep}'} | "
             f"{r['mb_per_s'] if r['operation'] != 'gc' else ''} | {float(r['seconds']):.2f} | {int(r['peak_rss_kb']) / 1024:.0f} | "
             f"{mb(r['repo_bytes_after']):.1f} | {r['verified']} |".replace("| 0.0 |", "| |"))
L.append("")
secs = {(r["tool"], r["operation"]): float(r["seconds"]) for r in ops}
for op, what in (("restore", "first restore"), ("restore-again", "the same restore again, into memory it touched before")):
    k, rs = secs.get(("kbvault", op)), secs.get(("restic", op))
    if k and rs:
        L.append(f"Restore of the last night, {what}: kbvault {k:.2f} s, restic {rs:.2f} s: {rs / k:.2f}x.")
        L.append("")
L.append("gc: kbvault gc --keep-last; restic forget --prune; borg prune then borg compact; gzip: rm of the older nights.")
L.append("")
L.append("## Chunk size study on the same nights (`kbvault bench chunking`)")
L.append("")
L.append("| avg chunk | chunks | distinct | dedup | stored MB (estimate) | index MB (estimate) | MB/s |")
L.append("|---|---|---|---|---|---|---|")
for s in study:
    a = s["chunk_avg"]
    L.append(f"| {a >> 20} MiB |" if a >= 1 << 20 else f"| {a >> 10} KiB |")
    L[-1] += f" {s['chunks']} | {s['unique_chunks']} | x{s['dedup_ratio']:.2f} | {mb(s['stored_bytes_estimate']):.1f} | {mb(s['index_bytes_estimate']):.1f} | {s['raw_bytes'] / s['seconds'] / 1e6:.0f} |"
L.append("")
L.append("## Microbenchmarks (one core) and pipeline scaling")
L.append("")
L.append("| stage | MB/s |")
L.append("|---|---|")
for m in micro:
    L.append(f"| {m['stage']} | {m['MB_per_s']} |")
L.append("")
L.append("| snapshot threads (KBVAULT_THREADS) | MB/s, unencrypted, last night's pg_dump |")
L.append("|---|---|")
for t in threads:
    L.append(f"| {t['threads']} | {t['mb_per_s']} |")
with open(f"{P}-bars.csv", "w") as f:
    for t, i, r in bars:
        f.write(f"{t},{i:.1f},{rmbs.get(t, 0):.1f},{r:.0f}\n")
open(f"{P}.md", "w").write("\n".join(L) + "\n")
print("\n".join(L))
