"""Markdown from a report of ``bench_index_scale.py``: the table, the goals, the vector check
and the Postgres plans, to paste into docs/scale.md.

    .venv/bin/python scripts/scale_report.py docs/scale.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HEADER = [
    "backend",
    "faces",
    "writer faces/s",
    "settle s",
    "reindex s",
    "top10 p50 / p99 ms",
    "top100 p50 / p99 ms",
    "recall@10",
    "recall@100",
    "process peak MiB",
    "server peak MiB",
]


def _row(faces: int, backend: str, r: dict[str, Any]) -> list[str]:
    if "error" in r:
        return [backend, f"{faces:,}", r["error"], *[""] * (len(HEADER) - 3)]
    s10, s100, peak = r["search"]["top10"], r["search"]["top100"], r["rss_peak"]
    return [
        backend,
        f"{faces:,}",
        f"{r['writer']['faces_per_s']:,.0f}",
        f"{r['settle']['settle_s']:,.1f}",
        f"{r['reindex']['seconds']:,.0f}",
        f"{s10['p50_ms']:.1f} / {s10['p99_ms']:.1f}",
        f"{s100['p50_ms']:.1f} / {s100['p99_ms']:.1f}",
        f"{s10['recall_at_10']:.3f}",
        f"{s100['recall_at_100']:.3f}",
        f"{peak.get('process_peak_mib', 0):,.0f}",
        f"{peak['server_peak_mib']:,.0f}" if "server_peak_mib" in peak else "in process",
    ]


def table(reports: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for report in reports:
        faces = int(report["gallery"]["faces"])
        for backend, r in report.get("backends", {}).items():
            lines.append("| " + " | ".join(_row(faces, backend, r)) + " |")
    return "\n".join(lines)


def vectors(report: dict[str, Any]) -> str:
    check = report["vectors"]["real_vs_synthetic"]
    q = ", ".join(f"p{round(100 * x)}" for x in check["nn_cosine"]["quantiles"])
    lines = [
        f"Sets of {check['set_size']:,} faces, {check['probes']:,} probes; quantiles {q}.",
        "",
        "| cosine | real | synthetic | KS distance |",
        "|---|---|---|---|",
    ]
    for name, label in (("nn_cosine", "to the nearest other face"), ("pair_cosine", "random pair")):
        c = check[name]
        lines.append(f"| {label} | {c['real']} | {c['synthetic']} | {c['ks']} |")
    return "\n".join(lines)


def plans(report: dict[str, Any]) -> str:
    out: list[str] = []
    for backend, r in report.get("backends", {}).items():
        pg = r.get("postgres")
        if not pg:
            continue
        out.append(
            f"From the {backend} run: a search of gallery 1 found {pg['query_faces']} face(s), "
            f"{pg['matches']} matches, status {pg['search_status']}."
        )
        for s in pg["statements"]:
            scans = f"; seq scans: {', '.join(s['seq_scans'])}" if s["seq_scans"] else ""
            out += [
                "",
                f"**{s['where']}**: `{s['sql'][:140]}...` ({s['calls']} call(s), "
                f"{s['ms_in_app']} ms each in the app{scans})",
                "",
                "```",
                *s["plan"],
                "```",
            ]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    reports = [json.loads(Path(p).read_text()) for p in argv]
    print(table(reports))
    print()
    print(vectors(reports[0]))
    print()
    for report in reports:
        text = plans(report)
        if text:
            print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
