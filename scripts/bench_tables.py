#!/usr/bin/env python3
"""Markdown tables from `ditto bench --json` files (docs/bench/*.json).

    python3 scripts/bench_tables.py docs/bench/*.json
"""
import json
import sys


def gib(b):
    return b / 2**30


def main(paths):
    print("| model | tokens | secret input | policy | wall s | GiB | online GiB | client MB | rounds | LAN est s | WAN est s | bytes ÷ uniform64 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for p in paths:
        d = json.load(open(p))
        if "model" not in d:  # `ditto bench kernels --json`
            continue
        base = None
        for r in d["results"]:
            if r["policy"] == "uniform64":
                base = r["comm_bytes"]
        for r in d["results"]:
            ratio = f"{r['comm_bytes'] / base:.3f}" if base else "—"
            layers = f", {d['layers']} layers" if d.get("layers") else ""
            net = f" (measured {d['net']}: {r['net_s']:.2f} s)" if r.get("net_s") else ""
            print(
                f"| {d['model']} {d['config']}{layers} | {d['seq']} | {d.get('input', 'ids')} | `{r['policy']}` "
                f"| {r['wall_s']:.2f} | {gib(r['comm_bytes']):.2f} | {gib(r['comm_bytes_online']):.2f} "
                f"| {r.get('client_bytes', 0) / 1e6:.1f} "
                f"| {r['rounds']} | {r['est_lan_s']:.2f}{net} | {r['est_wan_s']:.1f} | {ratio} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
