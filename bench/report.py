#!/usr/bin/python3
"""Turns scripts/bench's raw lines into the table of medians, the targets and REPORT.md.

Input: bench/report/raw.txt, one `key=value` line per run (the peers' format, plus round=).
Output: the Markdown table and the targets on stdout; REPORT.md and PNG plots (gnuplot) in --out.
Python 3 standard library only (Debian's /usr/bin/python3); every ratio is ringloop / peer.
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict

# tokio: the tokio server of the tls_* scenarios (current_thread with tokio-rustls;
# bench/peers/tokio_tls).
SYSTEMS = ["ringloop", "floor", "asio", "tokio_ct", "tokio_mt", "tokio", "node", "asyncio",
           "uvloop", "fio", "nginx"]
PEERS = SYSTEMS[1:]
SLEEP_S = 0.1  # sleep_many's sleep: its overhead is wall - 0.1 s


def parse(path):
    """{(scenario, n, bytes): {system: [run dict, ...]}}; failed and skipped runs kept apart.
    bytes is the message size of tls_echo (0 elsewhere): its rows differ in size and count."""
    runs = defaultdict(lambda: defaultdict(list))
    skipped, failed = {}, []
    with open(path) as raw:
        for line in raw:
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if "peer" not in fields or "scenario" not in fields:
                continue
            key = (fields["scenario"], int(fields.get("n", 0)),
                   int(fields.get("bytes", 0)) if fields["scenario"] == "tls_echo" else 0)
            if "skipped" in fields:
                skipped[(key, fields["peer"])] = fields["skipped"]
            elif "error" in fields:
                failed.append((key, fields["peer"], fields["error"]))
            else:
                runs[key][fields["peer"]].append(fields)
    return runs, skipped, failed


# Metrics per scenario: (label, function of one run -> number, format, lower_is_better).
def _f(key, scale=1.0, offset=0.0):
    return lambda r: (float(r[key]) - offset) * scale


METRICS = {
    "sleep_many": [
        ("wall s", _f("wall_s"), "{:.3f}", True),
        ("overhead ms (wall - 0.1 s)", _f("wall_s", 1e3, SLEEP_S), "{:.0f}", True),
        ("cpu s", _f("cpu_s"), "{:.3f}", True),
        ("peak RSS MB", _f("rss_kb", 1 / 1024), "{:.0f}", True),
    ],
    "lateness": [
        ("p50 us", _f("p50_us"), "{:.0f}", True),
        ("p99 us", _f("p99_us"), "{:.0f}", True),
        ("max us", _f("max_us"), "{:.0f}", True),
    ],
    "spawn_gather": [
        ("ns/task", _f("ns_per_op"), "{:.0f}", True),
        ("peak RSS MB", _f("rss_kb", 1 / 1024), "{:.0f}", True),
    ],
    "wait_for_fast": [("ns/op", _f("ns_per_op"), "{:.0f}", True)],
    "wait_for_yield": [("ns/op", _f("ns_per_op"), "{:.0f}", True)],
    "wait_for_io": [("ns/op", _f("ns_per_op"), "{:.0f}", True)],
    "cancel_many": [("ns/cancel", _f("ns_per_op"), "{:.0f}", True)],
    "echo": [
        ("round trips/s", _f("rtt_per_s"), "{:.0f}", False),
        ("p99 us", _f("p99_us"), "{:.0f}", True),
    ],
    "spawn_process": [
        ("processes/s", _f("procs_per_s"), "{:.0f}", False),
        ("us/process", _f("us_per_op"), "{:.0f}", True),
        ("cpu s", _f("cpu_s"), "{:.3f}", True),
    ],
    # n is the payload in bytes; 8 client sockets, each with one datagram in flight.
    "udp_echo": [
        ("datagrams/s", _f("datagrams_per_s"), "{:.0f}", False),
        ("p99 us", _f("p99_us"), "{:.0f}", True),
    ],
}
def cpu_pct(r):
    """CPU time over wall time of the timed sleeps: ringloop prints it (busy_pct, the N sleeps
    only); for a peer it is cpu_s / wall_s of the whole scenario."""
    if "busy_pct" in r:
        return float(r["busy_pct"])
    return 100 * float(r["cpu_s"]) / float(r["wall_s"])


METRICS["lateness"].append(("cpu % (cpu / wall)", cpu_pct, "{:.1f}", True))
METRICS["lateness_loaded"] = METRICS["lateness"]
METRICS["unix_echo"] = METRICS["echo"]
# Precision mode (ringloop only; the floor column is the floor's plain kernel timer, ran=...).
METRICS["lateness_precise"] = [
    ("p50 us", _f("p50_us"), "{:.1f}", True),
    ("p99 us", _f("p99_us"), "{:.1f}", True),
    ("max us", _f("max_us"), "{:.0f}", True),
    ("cpu % (cpu / wall)", cpu_pct, "{:.1f}", True),
]
METRICS["lateness_precise_loaded"] = METRICS["lateness_precise"]
METRICS["pacer_drift"] = [
    ("first tick's lateness us", _f("first_us"), "{:.1f}", True),
    ("last tick's lateness us", _f("last_us"), "{:.1f}", True),
    ("first 100 ticks, p50 us", _f("first100_p50_us"), "{:.1f}", True),
    ("last 100 ticks, p50 us", _f("last100_p50_us"), "{:.1f}", True),
    ("slope us per 1k ticks", _f("slope_us_per_1k"), "{:.2f}", True),
    ("p50 us", _f("p50_us"), "{:.1f}", True),
    ("p99 us", _f("p99_us"), "{:.1f}", True),
    ("wall - n * 1 ms, ms", lambda r: float(r["wall_s"]) * 1e3 - float(r["n"]), "{:.1f}", True),
]
METRICS["pacer_drift_precise"] = METRICS["pacer_drift"]
# echo with every socket a direct descriptor (issue #18): ringloop only, set against its echo.
METRICS["echo_direct"] = METRICS["echo"]
# echo with each server side on one multishot receive over a loop-wide buffer ring (issue #18):
# ringloop only; scripts/bench runs the floor's plain echo in the floor's slot (ran=echo).
METRICS["echo_multishot"] = METRICS["echo"]
# 64 KiB messages (issue #18): MB/s is each round trip's message counted once (the bytes the
# clients got back), 10^6 bytes a MB. echo_bulk_multishot: ringloop's multishot server, its
# peers' columns their echo_bulk (ran=echo_bulk).
METRICS["echo_bulk"] = [("MB/s", _f("mb_per_s"), "{:.0f}", False)] + METRICS["echo"]
METRICS["echo_bulk_multishot"] = METRICS["echo_bulk"]
# file_read (issue #18): fio is the floor, in its own column.
METRICS["file_read"] = [
    ("IOPS", _f("iops"), "{:.0f}", False),
    ("cpu s", _f("cpu_s"), "{:.3f}", True),
]
METRICS["file_read_fixed"] = METRICS["file_read"]
# http_plaintext (issue #19): n is the loops (nginx: worker_processes); wrk -t1 -c64 on the same
# 2 cores, so the server's CPU seconds and the requests per CPU second are the fairer figures.
METRICS["http_plaintext"] = [
    ("requests/s", _f("req_per_s"), "{:.0f}", False),
    ("p99 us", _f("p99_us"), "{:.0f}", True),
    ("server cpu s", _f("cpu_s"), "{:.2f}", True),
    ("requests per cpu s", _f("req_per_cpu_s"), "{:.0f}", False),
    ("wrk cpu s", _f("wrk_cpu_s"), "{:.2f}", True),
]
# TLS (issue #17): one client program against every server; the server's CPU time per
# operation (from /proc over the timed part) compares the servers whoever bounds the rate.
TLS_CPU = [("server CPU us/op", _f("server_cpu_us_per_op"), "{:.1f}", True),
           ("client CPU %", _f("client_cpu_pct"), "{:.0f}", True)]
METRICS["tls_echo"] = METRICS["echo"] + TLS_CPU
METRICS["tls_handshake"] = [("handshakes/s", _f("handshakes_per_s"), "{:.0f}", False),
                            ("p99 us", _f("p99_us"), "{:.0f}", True)] + TLS_CPU
METRICS["tls_bulk"] = [("MB/s", _f("mb_per_s"), "{:.0f}", False),
                       ("server CPU us/MiB", _f("server_cpu_us_per_op"), "{:.0f}", True),
                       ("client CPU %", _f("client_cpu_pct"), "{:.0f}", True)]
# cross_loop (issue #19): ringloop's line carries its eventfd path too (eventfd_*), measured in
# the same process, alternating with the MSG_RING path; the peers have no such keys.
def _maybe(key):
    return lambda r: float(r.get(key, "nan"))


METRICS["cross_loop"] = [
    ("round trip p50 us", _f("p50_us"), "{:.1f}", True),
    ("round trip p99 us", _f("p99_us"), "{:.1f}", True),
    ("messages/s", _f("msgs_per_s"), "{:.0f}", False),
    ("eventfd path: p50 us", _maybe("eventfd_p50_us"), "{:.1f}", True),
    ("eventfd path: messages/s", _maybe("eventfd_msgs_per_s"), "{:.0f}", False),
    # tokio_mt only: tokio::spawn inside one runtime of two workers, for comparison (it stays on
    # the spawning worker: the share that ran on another thread says so).
    ("tokio_mt, spawn in one runtime: p50 us", _maybe("same_rt_p50_us"), "{:.1f}", True),
    ("tokio_mt, spawn in one runtime: % on another thread", _maybe("same_rt_other_thread_pct"),
     "{:.1f}", True),
]
# echo_loops (issue #19): n is the loops (tokio_mt: worker threads); one client process on the
# same 2 cores, so the server's CPU seconds and the round trips per CPU second are the fairer
# figures, as in http_plaintext.
METRICS["echo_loops"] = [
    ("round trips/s", _f("rtt_per_s"), "{:.0f}", False),
    ("p99 us", _f("p99_us"), "{:.0f}", True),
    ("server cpu s", _f("cpu_s"), "{:.2f}", True),
    ("round trips per cpu s", _f("rtt_per_cpu_s"), "{:.0f}", False),
    ("client cpu s", _f("client_cpu_s"), "{:.2f}", True),
]
# c100k (issue #18): n idle connections on each system's echo server (bench/c100k.sh starts it,
# bench/c100k_driver.cpp holds the connections). A fresh client that was not served within 2 s
# counts as never served (inf).
def _fresh_ms(r):
    return float(r["fresh_ms"]) if r.get("fresh_ok") == "yes" else float("inf")


METRICS["c100k"] = [
    ("connections accepted", _f("accepted"), "{:.0f}", False),
    ("connections served (echoed)", _f("answered"), "{:.0f}", False),
    ("RSS per idle connection KiB", _f("rss_per_conn_b", 1 / 1024), "{:.2f}", True),
    ("time to echo on all s", _f("echo_all_s"), "{:.3f}", True),
    ("fresh client served in ms (n idle)", _fresh_ms, "{:.1f}", True),
    ("all connected and accepted s (SYN retries: noisy)", _f("accept_s"), "{:.2f}", True),
]
METRICS["c100k_plain"] = METRICS["c100k"]
ORDER = ["sleep_many", "lateness", "lateness_loaded", "lateness_precise",
         "lateness_precise_loaded", "pacer_drift", "pacer_drift_precise", "spawn_gather",
         "wait_for_fast", "wait_for_yield", "wait_for_io", "cancel_many", "echo", "echo_multishot",
         "echo_direct", "echo_bulk", "echo_bulk_multishot", "unix_echo",
         "spawn_process", "udp_echo", "file_read", "file_read_fixed", "tls_echo", "tls_handshake",
         "tls_bulk", "http_plaintext", "cross_loop", "echo_loops", "c100k", "c100k_plain"]


def median_of(runs, metric):
    values = [metric(r) for r in runs]
    return statistics.median(values) if values else None


class Results:
    def __init__(self, runs, skipped, failed):
        self.runs, self.skipped, self.failed = runs, skipped, failed

    def keys(self):
        # Failed runs keep their row (and their targets read NOT RUN): no silent hole.
        seen = set(self.runs) | {k for k, _ in self.skipped} | {k for k, _, _ in self.failed}
        return sorted(seen, key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, k[2], k[1]))

    def median(self, key, system, label):
        for name, fn, _, _ in METRICS.get(key[0], []):
            if name.startswith(label):
                return median_of(self.runs[key].get(system, []), fn)
        raise KeyError(label)

    def ratio(self, key, peer, label):
        mine, theirs = self.median(key, "ringloop", label), self.median(key, peer, label)
        if mine is None or theirs is None or theirs == 0:
            return None
        return mine / theirs


def table(results):
    lines = ["| scenario | metric | " + " | ".join(SYSTEMS) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in SYSTEMS) + " |"]
    for key in results.keys():
        scenario, n, size = key
        conns = f"{n} conn{'s' if n > 1 else ''}"
        name = (f"{scenario} {conns}" if scenario in ("echo", "echo_multishot", "echo_bulk",
                                                       "echo_bulk_multishot", "unix_echo",
                                                       "tls_handshake", "c100k", "c100k_plain")
                else f"{scenario} {n}")
        if scenario == "udp_echo":
            name = f"udp_echo {n} B"
        if scenario in ("http_plaintext", "echo_loops"):
            name = f"{scenario} {n} loop{'s' if n > 1 else ''}"
        if scenario == "tls_echo":
            name = f"tls_echo {conns} {size} B"
        if scenario == "tls_bulk":
            name = f"tls_bulk {n} MiB"
        for label, fn, fmt, _ in METRICS.get(scenario, []):
            cells = []
            mine = median_of(results.runs[key].get("ringloop", []), fn)
            for system in SYSTEMS:
                runs = results.runs[key].get(system, [])
                if not runs:
                    cells.append("skip" if (key, system) in results.skipped else "-")
                    continue
                value = median_of(runs, fn)
                if math.isnan(value):  # a key only some systems print (cross_loop's)
                    cells.append("-")
                    continue
                cell = fmt.format(value)
                if system != "ringloop" and mine is not None and not math.isnan(mine) and value:
                    cell += f" ({mine / value:.2f})"
                cells.append(cell)
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
            name = ""
    return "\n".join(lines)


# ----------------------------------------------------------------------------- targets
def targets(results):
    """[(status, target text, measured text)] for every target of issue 11."""
    out = []

    def check(what, key, peer, label, limit, strict=False):
        r = results.ratio(key, peer, label) if key in results.runs else None
        if r is None:
            out.append(("NOT RUN", what, "no measurement"))
            return
        met = r < limit if strict else r <= limit
        # Three decimals: a tie (0.998 against "ahead", 1.003 against "within") must show.
        out.append(("MET" if met else "NOT MET", what, f"{r:.3f}"))

    def keys_of(scenario):
        return [k for k in results.keys() if k[0] == scenario]

    for key in keys_of("spawn_gather"):
        n = key[1]
        # Issue #21's: as fast as tokio's current_thread per task, within 1.2x of its memory.
        check(f"spawn_gather {n}: ns/task <= tokio_ct's (#21)", key, "tokio_ct", "ns/task", 1.0)
        check(f"spawn_gather {n}: peak RSS <= 1.2x tokio_ct's (#21)", key, "tokio_ct", "peak RSS",
              1.2)
        check(f"spawn_gather {n}: ns/task <= 1/3 of tokio_ct", key, "tokio_ct", "ns/task", 1 / 3)
        check(f"spawn_gather {n}: ns/task <= 1/10 of node", key, "node", "ns/task", 1 / 10)
        check(f"spawn_gather {n}: ns/task <= 1/20 of asio", key, "asio", "ns/task", 1 / 20)
    for key in keys_of("sleep_many"):
        n = key[1]
        check(f"sleep_many {n}: overhead <= 1.3x floor", key, "floor", "overhead", 1.3)
        for peer in ("node", "tokio_ct", "asio"):
            check(f"sleep_many {n}: wall ahead of {peer}", key, peer, "wall", 1.0, strict=True)
        check(f"sleep_many {n}: peak RSS below node", key, "node", "peak RSS", 1.0, strict=True)
    for scenario in ("lateness", "lateness_loaded"):
        for key in keys_of(scenario):
            check(f"{scenario} {key[1]}: p50 <= 1.1x floor", key, "floor", "p50", 1.1)
            check(f"{scenario} {key[1]}: p99 <= 1.5x floor", key, "floor", "p99", 1.5)
    # Issue #7. The floor's figures in these rows are its plain kernel timer (ran=lateness...),
    # interleaved with ringloop's precise sleeps.
    for scenario in ("lateness_precise", "lateness_precise_loaded"):
        for key in keys_of(scenario):
            check(f"{scenario} {key[1]}: p99 <= 1/10 of the floor's kernel timer", key, "floor",
                  "p99", 0.1)
    for scenario in ("pacer_drift", "pacer_drift_precise"):
        for key in keys_of(scenario):
            for what, last, first, limit in (
                    ("last tick's lateness <= first tick's (one sample each)", "last tick",
                     "first tick", 1.0),
                    ("p50 of last 100 ticks <= 1.1x p50 of first 100", "last 100",
                     "first 100", 1.1)):
                a = results.median(key, "ringloop", last)
                b = results.median(key, "ringloop", first)
                text = f"{scenario} {key[1]}: {what}"
                if a is None or b is None or b == 0:
                    out.append(("NOT RUN", text, "no measurement"))
                else:
                    out.append(("MET" if a / b <= limit else "NOT MET", text, f"{a / b:.3f}"))
    for key in keys_of("wait_for_fast"):
        check(f"wait_for_fast {key[1]}: ahead of tokio_ct", key, "tokio_ct", "ns/op", 1.0, True)
    for key in keys_of("wait_for_yield"):
        check(f"wait_for_yield {key[1]}: <= tokio_ct's (#21)", key, "tokio_ct", "ns/op", 1.0)
        check(f"wait_for_yield {key[1]}: 2x ahead of tokio_ct", key, "tokio_ct", "ns/op", 0.5)
    for key in keys_of("wait_for_io"):
        check(f"wait_for_io {key[1]}: <= 1.2x floor", key, "floor", "ns/op", 1.2)
    for key in keys_of("cancel_many"):
        for peer in ("node", "tokio_ct", "asio"):
            check(f"cancel_many {key[1]}: ahead of {peer}", key, peer, "ns/cancel", 1.0, True)
        check(f"cancel_many {key[1]}: <= 1.5x floor", key, "floor", "ns/cancel", 1.5)
    for key in keys_of("echo") + keys_of("unix_echo"):
        for peer in ("tokio_ct", "uvloop", "asio") if key[0] == "echo" else ("tokio_ct", "uvloop"):
            # Round trips per second: higher is better, so "ahead" is a ratio above 1.
            r = results.ratio(key, peer, "round trips") if key in results.runs else None
            what = f"{key[0]} {key[1]} conn(s): round trips/s ahead of {peer}"
            if r is None:
                out.append(("NOT RUN", what, results.skipped.get((key, "ringloop"), "no data")))
            else:
                out.append(("MET" if r > 1 else "NOT MET", what, f"{r:.3f}"))
    # Issue #18: the multishot + buffer ring echo at the floor's level. The floor's figures in
    # these rows are its plain echo (ran=echo), interleaved; higher is better.
    for key in keys_of("echo_multishot"):
        r = results.ratio(key, "floor", "round trips") if key in results.runs else None
        what = f"echo_multishot {key[1]}: round trips/s not below 0.95x floor's echo"
        if r is None:
            out.append(("NOT RUN", what, "no measurement"))
        else:
            out.append(("MET" if r >= 0.95 else "NOT MET", what, f"{r:.3f}"))
    # 64 KiB messages, plain and multishot servers: MB/s at the floor's level and ahead of tokio
    # (higher is better).
    for key in keys_of("echo_bulk") + keys_of("echo_bulk_multishot"):
        for peer, what, limit in (("floor", "not below 0.95x floor", 0.95),
                                  ("tokio_ct", "ahead of tokio_ct", 1.0)):
            r = results.ratio(key, peer, "MB/s") if key in results.runs else None
            text = f"{key[0]} {key[1]} conn(s): MB/s {what}"
            if r is None:
                out.append(("NOT RUN", text, "no measurement"))
            else:
                met = r > limit if limit == 1.0 else r >= limit
                out.append(("MET" if met else "NOT MET", text, f"{r:.3f}"))
    for key in keys_of("http_plaintext"):
        # Higher is better for both: "ahead" is a ratio above 1.
        for label, what in (("requests/s", "requests/s ahead of nginx"),
                            ("requests per cpu", "requests per CPU second ahead of nginx")):
            r = results.ratio(key, "nginx", label) if key in results.runs else None
            text = f"http_plaintext {key[1]} loop(s): {what}"
            if r is None:
                out.append(("NOT RUN", text, "no measurement"))
            else:
                out.append(("MET" if r > 1 else "NOT MET", text, f"{r:.3f}"))
    # Issue #19: cross-loop ping-pong ahead of tokio (both runtimes) on round-trip latency
    # (p50 and p99: lower is better) and on messages/s (higher is better).
    for key in keys_of("cross_loop"):
        for peer in ("tokio_ct", "tokio_mt"):
            for label, what, lower in (("round trip p50", "round trip p50", True),
                                       ("round trip p99", "round trip p99", True),
                                       ("messages/s", "messages/s", False)):
                r = results.ratio(key, peer, label) if key in results.runs else None
                text = f"cross_loop {key[1]}: {what} ahead of {peer}"
                if r is None:
                    out.append(("NOT RUN", text, "no measurement"))
                else:
                    out.append(("MET" if (r < 1 if lower else r > 1) else "NOT MET", text,
                                f"{r:.3f}"))
    # Issue #17: ahead of every peer on round trips/s and bulk MB/s; handshakes/s within 10% of
    # Node's (both are OpenSSL's arithmetic). Higher is better in all three.
    tls_rows = [("tls_echo", "round trips/s", ("asio", "tokio", "node", "uvloop", "asyncio"), 1.0),
                ("tls_bulk", "MB/s", ("asio", "tokio", "node", "uvloop", "asyncio"), 1.0),
                ("tls_handshake", "handshakes/s", ("node",), 0.9)]
    for scenario, label, peers, limit in tls_rows:
        for key in keys_of(scenario):
            name = {"tls_echo": f"tls_echo {key[1]} conn(s) {key[2]} B",
                    "tls_bulk": f"tls_bulk {key[1]} MiB"}.get(scenario, f"{scenario} {key[1]} conn(s)")
            for peer in peers:
                r = results.ratio(key, peer, label) if key in results.runs else None
                what = (f"{name}: {label} ahead of {peer}" if limit == 1.0
                        else f"{name}: {label} within 10% of {peer}")
                if r is None:
                    out.append(("NOT RUN", what, "no measurement"))
                else:
                    met = r > limit if limit == 1.0 else r >= limit
                    out.append(("MET" if met else "NOT MET", what, f"{r:.3f}"))
    # Issue #18: every connection served (accepted, and its one byte echoed) in every round, RSS
    # per idle connection below every peer's; a fresh client served within 2 s while n idle.
    for key in keys_of("c100k") + keys_of("c100k_plain"):
        n = key[1]
        mine = results.runs[key].get("ringloop", [])
        served = [min(int(r.get("accepted", -1)), int(r.get("answered", -1))) for r in mine]
        all_served = bool(served) and min(served) == n
        served_text = f"served {min(served)}/{n}" if served else "no ringloop run"
        if key[0] == "c100k_plain":
            out.append(("MET" if all_served else "NOT RUN" if not served else "NOT MET",
                        f"c100k_plain {n}: every connection served on the path before multishot "
                        "(an accept SQE each, no stall)", served_text))
            continue
        ratios = {p: results.ratio(key, p, "RSS per idle") for p in ("tokio_ct", "node", "asio")}
        what = f"c100k {n}: every connection served, RSS per idle connection below every peer's"
        if not served or any(r is None for r in ratios.values()):
            missing = [p for p, r in ratios.items() if r is None]
            out.append(("NOT RUN", what, f"{served_text}; no RSS from {', '.join(missing)}"
                        if missing else served_text))
        else:
            met = all_served and all(r < 1 for r in ratios.values())
            out.append(("MET" if met else "NOT MET", what, served_text + "; RSS ratio " +
                        ", ".join(f"{p} {r:.3f}" for p, r in ratios.items())))
        fresh = [_fresh_ms(r) for r in mine]
        what = f"c100k {n}: a fresh client served within 2 s while {n} idle (every round)"
        if not fresh:
            out.append(("NOT RUN", what, "no measurement"))
        else:
            out.append(("MET" if max(fresh) <= 2000 else "NOT MET", what,
                        f"slowest {max(fresh):.1f} ms"))
    tls_keys = [k for k in results.keys() if k[0].startswith("tls_")]
    if tls_keys and not any(r.get("records") == "ktls" for k in tls_keys
                            for r in results.runs[k].get("ringloop", [])):
        out.append(("NOT RUN", "tls_*: ringloop with kTLS records (and the 1 GiB sendfile over "
                    "kTLS)", f"not measured: this kernel ({platform.release()}) has no kTLS "
                    "(CONFIG_TLS); a host kernel with it would measure it"))
    return out


def targets_text(rows):
    if not rows:  # a run of scenarios without targets (udp_echo alone, say)
        return "(no target applies to the scenarios run)"
    width = max(len(t) for _, t, _ in rows)
    return "\n".join(f"{s:8} {t:{width}}  ratio {m}" for s, t, m in rows)


# ----------------------------------------------------------------------------- plots
def gnuplot(script, cwd):
    try:
        subprocess.run(["gnuplot"], input=script, text=True, cwd=cwd, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return True
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"report.py: gnuplot failed: {getattr(error, 'stderr', error)}", file=sys.stderr)
        return False


def plot_lateness(results, out):
    """Clustered bars of p50 / p99 / max (medians over rounds) per system, log scale."""
    panels = []
    for scenario in ("lateness", "lateness_loaded"):
        keys = [k for k in results.keys() if k[0] == scenario and k in results.runs]
        if not keys:
            continue
        key = keys[-1]
        rows = []
        for system in SYSTEMS:
            if results.runs[key].get(system):
                values = [results.median(key, system, m) for m in ("p50", "p99", "max")]
                rows.append(f"{system} " + " ".join(f"{max(v, 1):.1f}" for v in values))
        panels.append((f"{scenario} (n={key[1]}): lateness of sleep(1 ms), us", rows))
    if not panels:
        return None
    script = ["set terminal pngcairo size 1100,%d font ',10' noenhanced" % (420 * len(panels)),
              "set output 'lateness.png'", f"set multiplot layout {len(panels)},1",
              "set style data histograms", "set style histogram clustered gap 1",
              "set style fill solid 0.8 border -1", "set logscale y", "set grid ytics",
              "set key top left", "set yrange [10:*]"]
    for title, rows in panels:
        script.append(f"set title '{title}'")
        script.append("plot '-' using 2:xtic(1) title 'p50', '' using 3 title 'p99', "
                      "'' using 4 title 'max'")
        for _ in range(3):
            script.extend(rows + ["e"])
    script.append("unset multiplot")
    return "lateness.png" if gnuplot("\n".join(script) + "\n", out) else None


def plot_timers(results, out):
    """Issue #7: lateness of a 1 ms sleep in both modes beside the floor's kernel timer
    (p50 / p99 / max bars, log scale, CPU % in the labels), alone and with 10k timers pending;
    and the pacer's lateness along 10,000 ticks (the median of each tenth), both precisions."""
    def runs_of(scenario, system):
        keys = [k for k in results.keys() if k[0] == scenario and k in results.runs]
        return (keys[-1], results.runs[keys[-1]].get(system, [])) if keys else (None, [])

    def bar(label, scenario, system):
        key, runs = runs_of(scenario, system)
        if not runs:
            return None
        values = [median_of(runs, _f(f"{m}_us")) for m in ("p50", "p99", "max")]
        cpu = median_of(runs, cpu_pct)
        return f'"{label}\\ncpu {cpu:.0f}%" ' + " ".join(f"{max(v, 0.05):.2f}" for v in values)

    panels = []
    for suffix, title in (("", "alone"), ("_loaded", "with 10k timers pending")):
        rows = [r for r in (
            bar("floor (kernel)", f"lateness_precise{suffix}", "floor"),
            bar("sleep", f"lateness{suffix}", "ringloop"),
            bar("sleep_precise", f"lateness_precise{suffix}", "ringloop")) if r]
        if rows:
            key, _ = runs_of(f"lateness_precise{suffix}", "ringloop")
            n = key[1] if key else "?"
            panels.append((f"lateness of a 1 ms sleep, {title} (n={n}), us", rows))
    drift = []
    for scenario, label in (("pacer_drift", "Pacer, kernel"), ("pacer_drift_precise",
                                                                 "Pacer, spin")):
        key, runs = runs_of(scenario, "ringloop")
        runs = [r for r in runs if "tenths_p50_us" in r]
        if not runs:
            continue
        tenths = [[float(v) for v in r["tenths_p50_us"].split(",")] for r in runs]
        points = [(key[1] * (i + 0.5) / len(tenths[0]),
                   statistics.median(t[i] for t in tenths)) for i in range(len(tenths[0]))]
        drift.append((label, points))
    if not panels and not drift:
        return None
    count = len(panels) + (1 if drift else 0)
    script = ["set terminal pngcairo size %d,460 font ',10' noenhanced" % (520 * count),
              "set output 'timers.png'", f"set multiplot layout 1,{count}", "set logscale y",
              "set grid ytics", "set key top left", "set format y '%g'", "set bmargin 4"]
    for title, rows in panels:
        script += ["set style data histograms", "set style histogram clustered gap 1",
                   "set style fill solid 0.8 border -1", "set yrange [0.05:*]",
                   f"set title '{title}'",
                   "plot '-' using 2:xtic(1) title 'p50', '' using 3 title 'p99', "
                   "'' using 4 title 'max'"]
        for _ in range(3):
            script.extend(rows + ["e"])
    if drift:
        script += ["set style data linespoints", "set yrange [0.05:*]", "set key bottom right",
                   "set xlabel 'tick'", "set title 'Pacer, 1 ms: lateness along the run "
                   "(median of each tenth), us'",
                   "plot " + ", ".join(f"'-' using 1:2 with linespoints lw 2 pt 7 title '{l}'"
                                       for l, _ in drift)]
        for _, points in drift:
            script.extend(f"{x:.0f} {max(y, 0.05):.2f}" for x, y in points)
            script.append("e")
    script.append("unset multiplot")
    return "timers.png" if gnuplot("\n".join(script) + "\n", out) else None


def plot_scaling(results, scenario, per_task, out):
    """ns per task and peak RSS against N, one line per system (log-log)."""
    keys = [k for k in results.keys() if k[0] == scenario and k in results.runs]
    if not keys:
        return None
    series = {}
    for system in SYSTEMS:
        points = []
        for key in keys:
            runs = results.runs[key].get(system, [])
            if runs:
                points.append((key[1], median_of(runs, lambda r: per_task(r, key[1])),
                               median_of(runs, lambda r: float(r["rss_kb"]) / 1024)))
        if points:
            series[system] = points
    name = f"{scenario}_scaling.png"
    what = "overhead ns per task ((wall - 0.1 s) / N)" if scenario == "sleep_many" else "ns per task"
    script = ["set terminal pngcairo size 1100,460 font ',10' noenhanced", f"set output '{name}'",
              "set multiplot layout 1,2", "set logscale xy", "set grid", "set key top left",
              "set xlabel 'N (tasks)'", "set format x '%.0s%c'"]
    for column, title in ((2, what), (3, "peak RSS, MB")):
        script.append(f"set title '{scenario}: {title}'")
        script.append("plot " + ", ".join(
            f"'-' using 1:{column} with linespoints lw 2 pt 7 title '{s}'" for s in series))
        for points in series.values():
            script.extend(f"{n} {a:.3f} {b:.3f}" for n, a, b in points)
            script.append("e")
    script.append("unset multiplot")
    return name if gnuplot("\n".join(script) + "\n", out) else None


# ----------------------------------------------------------------------------- report
def busy(load):
    """True when the 1-minute load average before the runs says another job shared the CPUs."""
    try:
        return float(load.split()[0]) > 1.5
    except (ValueError, IndexError):
        return False


def machine():
    def run(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"
    model = "?"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(l.split(":", 1)[1].strip() for l in info if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": f"{model}, {os.cpu_count()} CPUs",
        "memory": f"{mem_gb:.0f} GB",
        "kernel": platform.release(),
        "os": run("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
        "compiler": run("g++", "--version").splitlines()[0] if run("g++", "--version") else "?",
        "node": run("node", "--version"),
        "rustc": run("/usr/bin/rustc", "--version"),
        "python": run("/usr/bin/python3", "--version"),
    }


FAIRNESS = """\
- **Ratios** are ringloop / peer on the medians of this invocation; below 1 means ringloop is
  faster or smaller, except for echo's and echo_loops' round trips/s (and per CPU second),
  udp_echo's datagrams/s, echo_bulk's MB/s, cross_loop's messages/s and TLS's round trips/s,
  handshakes/s and MB/s, where above 1 means ringloop is ahead.
- **tokio's timer wheel has 1 ms slots and rounds a sleep up**: its `lateness` (about 1 ms more
  than the others) is a design choice, not slowness.
- **tokio's `timeout` polls the inner future first and arms no timer when it is ready**:
  `wait_for_fast` arms no timer in tokio, nor in ringloop (whose wait_for starts the child inline
  and submits the timer only if it suspends); Asio, Node and asyncio always arm one.
  `wait_for_yield` is where every system arms a timer and removes it: an entry in tokio's
  in-process wheel; in ringloop a timer record whose `IORING_OP_TIMEOUT` would be made at the
  loop's submit point, dropped in user space because the Coro returns before it (a timer still
  pending there goes to the kernel, and a `TIMEOUT_REMOVE` follows).
- **tokio's yield** in `wait_for_yield` is a self-waking future (back on the run queue), like
  ringloop's `sleep(0)`, Node's `setImmediate` and `asyncio.sleep(0)`.
- **max_in_flight**: ringloop runs with its defaults. The loop owes at most 4 x CQ = 262,144
  CQEs (the CQ's 65,536 entries are the kernel's maximum; the CQEs that do not fit wait on the
  kernel's overflow list, as the floor's do); further operations wait in its FIFO. So in
  `sleep_many` 100k every timeout reaches the kernel, as the floor's do. At 1M, the sleeps beyond
  262,144 wait in the FIFO, and one that leaves it with its deadline passed completes there with
  `-ETIME`, without an SQE, since arming an already-expired `IORING_OP_TIMEOUT` costs ~14 us in
  the kernel on this VM (bench/PROPOSALS.md, P1): ~334k of the 1M reach the kernel
  (`LoopStats`). The floor submits every timeout. `RINGLOOP_BENCH_MAX_IN_FLIGHT=2N` makes
  ringloop do the same.
- **The floor** is plain C on liburing with one shared timespec and no allocation per
  operation; it skips spawn_gather and wait_for_fast/yield (no coroutines). Its removes in
  cancel_many go in submission order, as ringloop's do (tasks are cancelled in spawn order).
- **Memory on this VM**: first-touch page faults are expensive here (a paravirtualised guest:
  `pvm_irq_enable` dominates kernel profiles), so per-task footprint shows directly in spawn
  and sleep figures. Nothing is tuned (no THP, no malloc tunables) for any system.
- **wait_for_io**: ringloop's `wait_for(nop(), 1 s)` is the NOP linked to an
  `IORING_OP_LINK_TIMEOUT`, as the floor does it by hand; Asio reads a full pipe (a real
  `READV`), tokio and Python read a socket that holds data (epoll readiness).
- **echo**: ringloop's client sends, then receives (two awaits, as tokio's `write_all` then
  `read_exact`); the floor submits both SQEs at once. One loop holds server and clients.
- **echo_multishot (issue #18)**: echo's clients and timing; each server side is one
  `receive_multishot` over a loop-wide `BufferRing` (2 x connections buffers of 64 B, rounded
  up to a power of two, at least 16: one message per connection is in flight at most), sending
  back from the received buffer and releasing it after the send. Its floor column is the floor's
  plain echo (a recv SQE per message into the connection's own buffer), run interleaved in the
  same round, and the ratio is ringloop-multishot / floor-echo. `rearms` in raw.txt counts the
  receives' SQEs beyond one per connection (-ENOBUFS, or a paused stream).
- **echo_bulk (issue #18)**: echo with 64 KiB messages at 1 and 100 connections: a client
  writes one and reads the 64 KiB echo back before the next (the floor submits its send and its
  recv together, as in echo; a short send goes on from where it stopped), every client's last
  echo compared byte for byte. MB/s counts each round trip's message once (the bytes the clients
  got back; the server moved as many each way), 10^6 bytes a MB. Servers: ringloop `recv` into
  a 64 KiB buffer in the frame, the floor a recv SQE into the connection's 64 KiB buffer, tokio
  `read` into a 64 KiB `Vec` then `write_all`. `echo_bulk_multishot` is ringloop's server on one
  `receive_multishot` per connection over a loop-wide ring of 64 KiB buffers (2 x connections,
  a power of two, at least 16), beside the floor's and tokio's `echo_bulk` in the same round.
- **udp_echo**: n is the payload (64 B, 1400 B); 8 connected client sockets, each sending one
  datagram and awaiting its echo, and one server socket echoing to each sender (ringloop:
  `recv_from`/`send_to`, a `recvmsg` and a `sendmsg` SQE; the floor the same SQEs by hand, its
  clients' send and recvmsg submitted together; tokio `UdpSocket`, Node `dgram`, asyncio/uvloop
  `create_datagram_endpoint`). datagrams/s counts round trips. One loop holds server and clients.
- **unix_echo**: echo's work over a Unix socket in /tmp (1 and 100 connections); ringloop's
  server is a `start_unix_server` Server (a handler task per connection) and its clients come
  from `open_unix_connection`; tokio's `UnixListener`/`UnixStream`, Node's `net` with a path,
  asyncio's and uvloop's `start_unix_server`/`open_unix_connection`, the floor's AF_UNIX
  sockets on liburing. Asio is not run (its peer has no Unix-socket code).
- **Python** is left out at N = 1M (tens of seconds and gigabytes per run).
- **Node**: `setTimeout` always arms a timer; wait_for is `Promise.race` with a timer cleared in
  `finally`; it has no single awaitable I/O operation (wait_for_io skipped).
- **Precision mode and the Pacer (issue #7)** are ringloop's own API: `lateness_precise` runs
  `sleep_precise(1 ms)` (the kernel timer armed a calibrated margin early, then a spin on the
  monotonic clock that yields to the loop at each turn); its floor column is the floor's plain
  `lateness` run interleaved with it (the kernel timer the spin improves on), so its ratio is
  the target's. `cpu %` is CPU over wall time of the N sleeps alone for ringloop, of the whole
  scenario for the peers. `pacer_drift` is 10,000 ticks of a 1 ms `Pacer` (kernel precision,
  `_precise`: spin); `wall - n * 1 ms` is where the last tick came, against its schedule
  (the scenario's wall_s has ms resolution). The first tick is the process's first timer
  wake-up and is cold (~300-800 us late, every run), so "last <= first" holds for that reason
  as much as for the absence of drift: the medians of the first and last 100 ticks and the
  slope are the real check.
- **spawn_process**: N sequential spawns of `/bin/true`, each waited before the next, stdio
  inherited everywhere (Node's is set to `inherit`). ringloop: `posix_spawn` (vfork) + a pidfd,
  waited with `IORING_OP_WAITID` (Linux 6.7+; a poll on the pidfd before); asyncio 3.11:
  `subprocess.Popen` and a thread per child (ThreadedChildWatcher); Node: libuv's `uv_spawn`
  and SIGCHLD; tokio: `std::process::Command` and SIGCHLD. Most of the time is the kernel's
  process creation and exec, the same for all.
- **http_plaintext**: Debian's `wrk -t1 -c64 --latency` for the same seconds against
  `examples/http_server PORT --loops N` and Debian's nginx (`worker_processes N`, `access_log
  off`, `return 200 "Hello, World!"`, `default_type text/plain`, `keepalive_requests` raised so
  that no side reconnects, each worker and each loop with its own `SO_REUSEPORT` socket), both
  started by `bench/http_plaintext.sh`, which checks the body before measuring. wrk shares the 2
  cores: `server cpu s` is the server's user+system time over the run (/proc/PID/stat, every
  nginx process summed), `requests per cpu s` the requests over it.
- **cross_loop**: N round trips one after another between two threads. ringloop: loop 0 awaits
  `group.loop(1).call(fn)` (MSG_RING doorbells; the eventfd rows force ringloop's fallback, in
  the same process, alternating). tokio_ct: two `current_thread` runtimes, a request and a reply
  through two bounded mpsc channels. tokio_mt: a task on one multi-thread runtime's worker
  `spawn`s a task that returns k onto another multi-thread runtime (one worker each) and awaits
  its JoinHandle: the spawn goes through that runtime's inject queue and unparks its worker,
  the completion wakes the caller's worker the same way. Within one runtime tokio cannot be told
  to use another worker: `tokio::spawn` from a worker fills that worker's LIFO slot and the task
  runs there (the `spawn in one runtime` rows: ~0% on another thread), a same-thread handoff, not
  a cross-thread one, shown for comparison and not used in the ratios. floor: a pipe between two
  threads. Nothing is pinned (`RINGLOOP_BENCH_PIN=1` pins ringloop's loops only).
- **echo_loops**: 100 connections, 64-byte messages, the same seconds, from one client program
  (`bench/echo_loops_client`: epoll, one thread, its own process, every echo checked) against
  `ringloop_echo_loops_server N` (a `LoopGroup` of N loops, each with its own `start_server`
  listener on the port, `reuse_port`; `conns_per_loop` in raw.txt is how the kernel spread the
  connections) and tokio's multi-thread runtime with `worker_threads` N (one listener, a task per
  connection, work-stealing), both started by `bench/echo_loops.sh`, which checks that each runs
  N threads besides its main one. The client shares the 2 cores: `server cpu s` is the server's
  user+system time over the timed part (/proc), `round trips per cpu s` the round trips over it.
  The other peers are not run: none of them serves one echo from N threads here.
- **TLS (tls_echo, tls_handshake, tls_bulk; issue #17)**: each system runs its own TLS echo
  server in its own process (ringloop: `start_server` with a `TlsContext`, records through
  OpenSSL in user space since this kernel has no kTLS; Node `tls.createServer` piped into itself;
  asyncio/uvloop `start_server(ssl=)`; Asio `ssl::stream` on its io_uring backend; tokio 1.24's
  `current_thread` runtime with tokio-rustls 0.23, a task per connection, `read` into 64 KiB then
  `write_all`), started fresh for each run with the same EC P-256 certificate made at run time;
  and one client program (`bench/tls/tls_bench_client`: plain OpenSSL 3, non-blocking sockets
  and epoll in one thread, read-ahead on; handshakes: one blocking thread per connection) drives
  them all, so the client's half of the crypto and its system calls are the same for every
  server. It offers only TLS 1.3, `TLS_AES_128_GCM_SHA256` and X25519, checks that every
  connection got them and verifies the certificate. tokio's server is the one not on OpenSSL:
  rustls 0.20 does the protocol and ring 0.16 the crypto (its AES-GCM, X25519 and P-256 code
  comes from BoringSSL), so against tokio ringloop's OpenSSL meets another TLS library as well
  as another loop. Higher is better for round trips/s, handshakes/s and MB/s. The client and the
  server share the 2 CPUs: `client CPU %` near 100 means the client bounds the rate, and `server
  CPU us/op` (the server's utime + stime from /proc over the timed part, per round trip,
  handshake or MiB) compares the servers whatever bounds it. A handshake is: connect, full
  handshake (no resumption), one byte echoed, close_notify, close. tls_bulk streams the MiB
  through the echo server one way while reading the echo back (the server decrypts and
  re-encrypts every byte); MB/s is one way. kTLS is not measured on this host (no CONFIG_TLS).
- **c100k (issue #18)**: N idle connections (19,000 in the full run: this VM's hard limit is
  20,000 descriptors per process; 5,000 in --quick) to each system's echo server, every one with
  a pending read and a 60 s idle deadline: ringloop `multishot_accept` + `receive_multishot`
  through one `BufferRing` (1,024 x 4 KiB) under `wait_for` (bench/c100k_server.cpp; the
  `c100k_plain` row is its path before multishot: an accept SQE per connection, `recv` into a
  16 KiB buffer in each frame); tokio `current_thread`, a task per connection, `timeout` around a
  wait for readability (`readable`), then `try_read` into a 1 KiB buffer on the stack; Asio on
  io_uring, a coroutine per connection, `async_wait(wait_read)` (a poll on the ring) beside a
  deadline watchdog on a `steady_timer` (Asio's cpp20 deadline example), then `read_some` into a
  1 KiB buffer made for the message; Node `net` with `socket.setTimeout` (bench/peers/). So no
  system holds a buffer per idle connection: tokio and Asio as their experts write a server for
  many idle connections (a 1 KiB buffer in each task, as in tokio's README echo, made tokio's
  figure 1 KiB larger), ringloop through its buffer ring. One driver (bench/c100k_driver.cpp) for all: it connects from 3 child processes, each
  from its own 127.0.0.k, waits until the listener's accept queue (/proc/net/tcp) is empty, reads
  the server's VmRSS once it stops growing, times a fresh client's one-byte echo while the N
  idle, then has all N echo one byte at once. RSS per idle connection is (idle RSS - RSS before
  the first connection) / N, so start-up and fixed pools (ringloop's buffer ring, untouched while
  idle) are outside it; it is user-space memory only: the kernel's sockets, and io_uring's or
  epoll's state per pending read, are outside it for every system. `all connected and accepted
  s` is bounded by the listen backlog (somaxconn is 4,096 here): a server that accepts slower
  than the clients connect overflows it, and the clients' dropped SYNs are retried after 1 s,
  then 2 s, 4 s, ...; so it says how a server takes a burst, not how it idles, and it can move by
  seconds between rounds of the same server under load. Served and accepted count up: a
  ratio of 1 says both served all.
- **Rounds**: scenarios at N = 1M and echo run at most 3 rounds in the full mode, to fit in
  ~20 minutes on a 2-core VM; `n` is the number of tasks or operations (echo: connections).
"""

# What profiling found for the targets this design misses (perf record --call-graph dwarf on
# ringloop_scenarios, release build). Keyed by the target's first word(s).
WHY = {
    "spawn_gather": "a task is now ~144 bytes (a trivial Coro<long>'s frame 120 bytes in a "
    "128-byte block, the Task and the result; gather adds nothing per child only it awaits) "
    "against ~265 three reports ago: the first-step record, the initial awaiter's promise "
    "pointer and a non-root's two pointers left the frame, gather watches its children through "
    "one record held in each child's waiters word, the promise keeps its value and its exception "
    "in one slot with its flags in the record's padding, and (the report before) the record lost "
    "its pointer to a per-promise-type table (the loop calls a task's three functions directly) and "
    "shares created_file's word with the extras (same hour, medians of 7 alternating runs: peak "
    "RSS 200k 38.9 -> 35.7 MB, 1M 166.9 -> 151.5 MB; tokio_ct 30.4 and 140.2). tokio's task is "
    "~137 bytes ((RSS at 1M - RSS at 200k) / 800k), and its base 3.0 MB against ringloop's 6.5 "
    "(the 64k-entry CQ ring, 1 MB, and libssl/libcrypto, 1.6 MB, which every program linking "
    "libringloop maps). ns/task: first-touch page faults (~40% of the samples, "
    "`clear_page_erms`, `exc_page_fault`) and malloc (~12%). MADV_HUGEPAGE was measured and "
    "refused: `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` made spawn_gather 1M from 0.5x to 2.7x "
    "the time across runs on this VM (synchronous compaction). See bench/PROPOSALS.md, P3.",
    "sleep_many": "perf: frame allocation and first touch, and the kernel's side of each timer "
    "(hrtimer set-up under the timeout lock, each timespec copied from its own frame where the "
    "floor shares one). A sleeping task costs ~270 bytes (a 248-byte frame in a 256-byte "
    "block, 280 two reports ago, the Task and the Coro vector) against the floor's 0. The "
    "smaller frame moved little (same hour, medians of 7 alternating runs: wall 0.194 -> 0.192 "
    "s, peak RSS 36.3 -> 34.8 MB). Where the overhead goes (a probe timing gather's phases, 6 "
    "runs): making the 100k Coros 16-25 ms (26 MB of fresh frames, first-touch faults), "
    "gather's set-up 7-9 ms, the children's first steps 48-60 ms, of which ~45 ms is system time "
    "arming the 100k timeouts, as the floor's whole 50-60 ms overhead is. So ringloop adds the "
    "making of its tasks (~25-35 ms), and the timers cost what the floor's do. The "
    "ratio moves with the VM, not the code: 1.53x in this report, 1.79x and 1.50x in the two "
    "before, with no change to a sleep between them (the same hour, 9 alternating runs of the "
    "code before the second of those and after gave wall medians of 0.219 and 0.211 s). "
    "Measured and refused: faulting the pool's pages in by batches (MADV_POPULATE_WRITE over "
    "64 KiB of fresh frames; spawn_gather 1M 179 -> 241 ns/task), huge pages (glibc's hugetlb "
    "tunable: 7,878 -> 1,537 faults, wall 0.191 -> 0.186 s), and prefetching the frames of the "
    "ready steps ahead (no gain). See P3.",
    "lateness": "the wake-up itself is the kernel's hrtimer plus one io_uring_enter; ringloop "
    "adds one loop iteration. Scheduling noise on this VM moves p99 by 2x between runs.",
    "wait_for_yield": "a Coro given to wait_for runs in the awaiting task, as Python 3.12's "
    "wait_for does (`async with timeout(): return await coro`): no child task is started or "
    "ended, and the caller goes on in the step in which the Coro returned, its timer dropped in "
    "user space (a timer's SQE is made at the loop's submit point, so this one never had one; "
    "one that had is removed by a record the loop frees at its CQE, so the caller never waits "
    "for the removal). What remains is the Coro's frame, the yield's trip through the ready "
    "queue and the deadline: the moment the await began is a TSC mark, put on the clock at the "
    "TSC's measured rate once the Coro suspends, with no clock read (tokio reads the clock). "
    "Same hour, code before against after, medians of alternating runs: the Coro in the caller, "
    "7 runs of 100k, 122.4 -> 90.6 ns (tokio_ct 179.6); the mark, 9 runs of 1M, 137.3 -> 109.2 "
    "ns (tokio_ct 170.7).",
    "wait_for_fast": "the Coro runs in the awaiting task and finishes inside the await: no task, "
    "no timer, no timer record (one is made only once the Coro suspends) and no clock read: the "
    "moment the await began is a TSC mark (`Loop::mark_now`, ~10 ns against clock_gettime's ~25 "
    "here, which perf had at ~40% of the samples), put on the clock only if the Coro suspends "
    "(tokio's timeout() reads the clock). What is left is the mark, the Coro's frame from the "
    "pool and its inline run. Same hour, medians of 9 alternating runs of 1M, before the mark "
    "and after: 57.2 -> 41.7 ns (tokio_ct 55.2). Per process the time still follows the memory "
    "layout (this report's five: 28-54 ns, tokio_ct 54-62; before the mark ~40 or ~56-68): with "
    "ASLR off (`setarch -R`) and the environment's size varied, which moves the stack within its "
    "page, a given size gives the same time run after run, which points at 4K aliasing between "
    "the stack and the heap frames; this VM exposes no PMU counter to confirm it.",
    "cancel_many": "each cancelled task throws CancelledError out of its sleep, as asyncio "
    "requires. The microbenchmarks split a cancel (bench/cancel.cpp; the table and its split "
    "below): "
    "`BM_ThrowCatchCancelledError` is the throw and catch alone (~1.0 us on this VM), "
    "`BM_CancelEventBatch` a batch of tasks waiting on an Event, whose cancel reaches no kernel "
    "(the unwind and the task bookkeeping), `BM_CancelBatch` the same batch sleeping (plus the "
    "TIMEOUT_REMOVE and its two CQEs, which is the floor's whole cost). At 100k tasks the frames "
    "are out of cache as well (perf: libgcc's unwinder and the personality routine ~43% of the "
    "samples, the kernel ~43%). The floor's bare TIMEOUT_REMOVE and tokio's abort (which drops "
    "the future without running it) pay no unwind. One throw per cancelled task, none for one "
    "cancelled before it started (tests/cancel_cost.cpp counts them). A no-throw cancel would "
    "have to destroy the frame without running the coroutine's handlers (tokio's abort): no "
    "`except CancelledError`, no cleanup awaits, which asyncio code relies on; so 1.5x the "
    "floor is out of reach by design, whose least is about floor + one throw.",
    "wait_for_io": "one io_uring_enter per op as in the floor (NOP + LINK_TIMEOUT); what remains "
    "is the awaiter and the loop iteration that resumes the caller.",
    "echo": "not profiled.",
    "echo_multishot": "at 1 connection the kernel does the floor's work per round trip or less "
    "(perf stat: 2 io_uring_enter, 4 CQEs and 1 poll arm against the floor's 2: the multishot "
    "receive stays armed), so a gap there is user space: perf record puts 11% of the time in "
    "ringloop, liburing and the scenario against the floor's 8.6% (Ring's enter, the reap, two "
    "coroutines resumed). At 100 and 1,000 connections the saved poll arm puts it ahead of the "
    "floor's echo (two runs of 3 rounds: 1.04 and 1.04, 1.05 and 1.03; at 1: 0.97 and 1.01).",
    "echo_bulk": "at 1 connection ringloop's kernel work per round trip is the floor's (perf "
    "stat: 2 enters, 4 CQEs, 2 poll arms each) and user space ~4% of the time (floor ~2%). At "
    "100 connections the floor is behind tokio too (0.91-0.93 in the same runs): perf record "
    "has the copies out of user memory (`_copy_from_iter`, the sends) at 23% of the time for "
    "the floor and ringloop against tokio's 19%, the copies in alike. An io_uring loop reaps "
    "~20 round trips per io_uring_enter here and sends each echo one batch after its data came "
    "in, a few MB through the 2 MiB L2 later, while tokio writes each echo right after its "
    "read; the floor is ahead of tokio at 4 and 16 connections (1.04-1.15) and behind at 100. "
    "The likely cause (not proven), and not ringloop's: a smaller reap batch for bulk "
    "streams would be the experiment. Pointing that way: echo_bulk_multishot on a ring of 1-4 "
    "buffers (RINGLOOP_BENCH_ECHO_RING) moved ~4,000 MB/s at 100 connections, not ~2,500.",
    "tls_echo": "the copies through memory BIOs are gone (2026-12-01): OpenSSL reads the "
    "ring's receive buffer in place through a BIO of ringloop's own, the records it writes go "
    "to the Stream's queue by move into storage the Stream keeps from the last send, and "
    "TlsStream::read_into (what the bench server uses, as Asio's reads into its array) "
    "decrypts into the caller's buffer; by hand (100 connections x 16 KiB, medians of 5 "
    "interleaved runs) server CPU per round trip 47.5 -> 31.9 us, Asio 37.4 in the same runs. "
    "perf now: memmove 16% (the three copies OpenSSL's API leaves: BIO -> its record buffer, "
    "plaintext -> the caller, its encrypted record -> our string), libcrypto 34%, the kernel "
    "36%. Against tokio the other side is rustls 0.20 with ring, not OpenSSL 3.0: 22.6 us per "
    "round trip against ringloop's 30.5 at 100 connections, and per handshake 283 us against "
    "589 (the P-256 and X25519 arithmetic). Left: sending OpenSSL's record from its own "
    "buffer (a BIO write that asks for a retry until the send's CQE) would save one copy of "
    "three; not done, since a write cancelled mid-record would then break the stream that "
    "the Stream's queue keeps whole.",
    "tls_handshake": "OpenSSL's arithmetic dominates (~590 us of server CPU per handshake for "
    "ringloop and Asio alike; tokio's rustls with ring takes 283); each ringloop handshake also tries the kTLS ULP "
    "(setsockopt(TCP_ULP) fails with ENOENT on this kernel, ~50 us under strace).",
    "unix_echo": "not profiled.",
    "http_plaintext": "not profiled.",
    "lateness_precise": "the spin ends within a loop turn of the deadline (p50 well under "
    "1 us); what remains in the tail is the spinning thread being preempted (on this shared "
    "2-core VM, by other builds: a CFS slice is ~3-4 ms) and kernel wake-ups later than the "
    "calibrated margin. Spinning costs CPU, and a busy thread loses the scheduler's sleeper "
    "credit: precision mode needs a core to itself.",
    "pacer_drift": "the intended times are exact (origin + k * period, tested); the last "
    "tick's lateness is a single wake-up, as noisy as any (p99 vs p50 in the table): compare "
    "the medians of the first and last 100 ticks and the slope.",
    "c100k": "an idle connection on ringloop's multishot path is its echo coroutine's frame, "
    "the multishot receive's stream and its idle deadline, one `Timeout` pushed back at each "
    "message (`Timeout::run`'s frame and the block's): 1,520 B per idle connection at 19,000 "
    "(2026-12-01, bench/c100k.sh ringloop c100k 19000) against tokio's 1,621, whose `timeout` "
    "is a field of the connection's future; 1,345 B with a `wait_for` around each `next()` "
    "instead, 736 B with no deadline. The `wait_for` form took ~2x as long to echo on all "
    "(0.60 / 0.53 s against 0.33-0.37): each message removed its kernel timer and armed the "
    "next, where a Timeout moved later leaves its timer in the kernel. perf put 0.35% of the "
    "server's samples in `io_timeout_remove`: an earlier one-off reading of 36% did not "
    "reproduce.",
}

WHY["echo_bulk_multishot"] = WHY["echo_bulk"]  # the same batch-and-cache cause at 100

def load_microbench(path):
    """The microbenchmarks' medians from Google Benchmark's JSON: {name: (ns per iteration,
    items per second or None)}, in the order they ran. With repetitions the median aggregate,
    else the one run."""
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        runs = json.load(f).get("benchmarks", [])
    scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
    medians, singles = {}, {}
    for run in runs:
        entry = (float(run["real_time"]) * scale.get(run.get("time_unit", "ns"), 1.0),
                 run.get("items_per_second"))
        if run.get("run_type") == "aggregate":
            if run.get("aggregate_name") == "median":
                medians[run["run_name"]] = entry
        else:
            singles.setdefault(run.get("run_name", run["name"]), entry)
    return medians or singles


def microbench_md(bench):
    md = ["## Microbenchmarks (ringloop alone)", "",
          "Google Benchmark (bench/*.cpp, one file per concept), run by the same `scripts/bench`; "
          "medians of its repetitions. No peer runs these: they hold ringloop to its own past "
          "(a change that slows one shows here).", "",
          "| benchmark | ns per iteration | items/s |", "| --- | ---: | ---: |"]
    for name, (ns, items) in bench.items():
        md.append(f"| {name} | {ns:,.0f} | {f'{items:,.0f}' if items else '-'} |")
    # A cancel, split: the unwind alone, a cancel that reaches no kernel, one that does.
    throw = bench.get("BM_ThrowCatchCancelledError")
    event = bench.get("BM_CancelEventBatch/1000")
    sleep = bench.get("BM_CancelBatch/1000")
    if throw and event and sleep and event[1] and sleep[1]:
        event_ns, sleep_ns = 1e9 / event[1], 1e9 / sleep[1]
        md += ["", f"A cancel, split (batches of 1,000 tasks): the throw and catch of "
               f"CancelledError alone {throw[0]:,.0f} ns; a task waiting on an Event (no SQE, "
               f"no CQE: the unwind and the task bookkeeping) {event_ns:,.0f} ns; a task "
               f"sleeping (plus its TIMEOUT_REMOVE and two CQEs) {sleep_ns:,.0f} ns, so the "
               f"kernel's part is ~{sleep_ns - event_ns:,.0f} ns."]
    return md + [""]


def report_md(results, rows, args, plots):
    info = machine()
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M %Z").strip()
    met = sum(1 for s, _, _ in rows if s == "MET")
    md = [f"# ringloop side by side ({args.mode} run)", "",
          "Generated by `scripts/bench` (bench/report.py); raw lines in `raw.txt`. Method: "
          "shared/BENCH.md (same work on every system, A B A B, medians, ratios).", "",
          "## Machine", "",
          f"- date: {now}", f"- command: `{args.command}` ({args.seconds} s)",
          f"- load average (1, 5, 15 min) before / after the runs: {args.load}"
          + (" (other work was running: ratios are noisier than usual)" if busy(args.load) else "")]
    md += [f"- {k}: {v}" for k, v in info.items()]
    md += ["", "## Medians (ratio ringloop / peer in parentheses)", "", table(results), ""]
    if results.failed:
        md += ["Failed runs: " + ", ".join(f"{p} {k[0]} {k[1]} ({e})" for k, p, e in
                                           results.failed), ""]
    skipped = sorted({(k[0], p, why) for (k, p), why in results.skipped.items()})
    if skipped:
        md += ["Skipped: " + "; ".join(f"{p} {s} ({w})" for s, p, w in skipped), ""]
    md += [f"## Targets ({met} of {len(rows)} met)", "", "| | target | ratio |", "| --- | --- | ---: |"]
    md += [f"| {s} | {t} | {m} |" for s, t, m in rows]
    unmet = sorted({t.split()[0] for s, t, _ in rows if s == "NOT MET"})
    if unmet:
        md += ["", "### What remains for the unmet targets", ""]
        for scenario in unmet:
            why = (WHY.get(scenario) or WHY.get(scenario.split("_loaded")[0])
                   or WHY.get(scenario.split("_precise")[0]))
            md.append(f"- **{scenario}**: {why or 'not profiled.'}")
    bench = load_microbench(args.microbench)
    if bench:
        md += [""] + microbench_md(bench)
    md += ["", "## Fairness notes", "", FAIRNESS]
    if plots:
        md += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(md)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--mode", default="full")
    parser.add_argument("--command", default="scripts/bench")
    parser.add_argument("--seconds", default="?")
    parser.add_argument("--load", default="?", help="load averages before / after the runs")
    parser.add_argument("--microbench", default=None,
                        help="Google Benchmark's JSON (default: microbench.json beside the report)")
    args = parser.parse_args()
    if args.microbench is None:
        args.microbench = os.path.join(args.out, "microbench.json")
    results = Results(*parse(args.raw))
    rows = targets(results)
    print("\n== medians (ratio ringloop / peer)\n")
    print(table(results))
    if results.failed:
        print("\nFAILED runs: " + ", ".join(f"{p} {k[0]} {k[1]} ({e})"
                                            for k, p, e in results.failed))
    print("\n== targets\n")
    print(targets_text(rows))
    plots = [p for p in (
        plot_lateness(results, args.out),
        plot_timers(results, args.out),
        plot_scaling(results, "spawn_gather", lambda r, n: float(r["ns_per_op"]), args.out),
        plot_scaling(results, "sleep_many",
                     lambda r, n: (float(r["wall_s"]) - SLEEP_S) * 1e9 / n, args.out),
    ) if p]
    with open(os.path.join(args.out, "REPORT.md"), "w") as out:
        out.write(report_md(results, rows, args, plots))
    print(f"\nwrote {os.path.join(args.out, 'REPORT.md')} and {', '.join(plots) or 'no plots'}")


if __name__ == "__main__":
    main()
