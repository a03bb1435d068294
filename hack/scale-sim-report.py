#!/usr/bin/env python3
"""Predicted vs measured for make scale-sim (hack/scale-sim.sh).

usage: scale-sim-report.py OUT_DIR REPLICAS GROUP_SIZE DOC

Reads the parley-load reports (PHASE.json, PHASE.log) and Redis samples
(PHASE.redis.txt) of each phase, computes what docs/scaling.md's model
predicts for the same rates and shape, and writes both into DOC between
<!-- scale-sim --> and <!-- /scale-sim -->.
"""
import datetime
import json
import os
import re
import sys

# The model's unit costs (docs/scaling.md, "Unit costs"), from the make bench
# run of 2026-12-03 05:29 UTC in docs/benchmarks.md: replicas 1.17 ms of CPU
# per group message with 39 recipient connections, half on the send side and
# half per delivered frame (the CPU profile's split); PostgreSQL 0.63 ms per
# message; Redis 0.12 ms per message sent (that run's 21.8 publishes per
# message included); idle 0.06 cores for 18,000 connections.
C_SEND_MS = 0.585        # replica CPU per message sent (decode, checks, seal, store call, publish)
C_FRAME_MS = 0.015       # replica CPU per frame delivered (open the envelope, queue, write)
C_SHARED_OPEN_MS = 0.02  # replica CPU per shared envelope received, recipients or not (an assumption: one HMAC over the body and a recipient scan)
C_PG_MS = 0.63           # PostgreSQL CPU per message (one statement)
C_REDIS_MSG_MS = 0.12    # Redis CPU per message sent (rate-limit script, publishes)
IDLE_CORES_PER_CONN = 0.06 / 18000
SHARED_MIN = 8           # chat-server -shared-fanout-min default


def load(out, phase):
    with open(os.path.join(out, phase + ".json")) as f:
        rep = json.load(f)
    with open(os.path.join(out, phase + ".log")) as f:
        log = f.read()
    samples = []
    with open(os.path.join(out, phase + ".redis.txt")) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 5:
                samples.append(tuple(float(x) for x in parts))
    return rep, log, samples


def window(rep, log, samples):
    """The traffic (or hold) window: from 2 s after the connections were up to its end."""
    m = re.search(r"^(\d\d:\d\d:\d\d) connections:", log, re.M)
    if not m or not samples:
        return None
    day = datetime.datetime.fromtimestamp(samples[0][0], datetime.timezone.utc).date()
    t = datetime.datetime.combine(day, datetime.time.fromisoformat(m.group(1)), datetime.timezone.utc).timestamp()
    length = rep["traffic"]["seconds"] if rep.get("traffic") else rep.get("holdSeconds", 0)
    return t + 2, t + length


def at(samples, t):
    """Linear interpolation of the samples at time t."""
    prev = samples[0]
    for s in samples:
        if s[0] >= t:
            if s[0] == prev[0]:
                return s
            f = (t - prev[0]) / (s[0] - prev[0])
            return tuple(a + (b - a) * f for a, b in zip(prev, s))
        prev = s
    return samples[-1]


def measure(out, phase, replicas):
    rep, log, samples = load(out, phase)
    cpu = {c["name"]: c["cores"] for c in rep.get("cpu", [])}
    servers = [cpu.get("server%d" % (i + 1), 0.0) for i in range(replicas)]
    pg = sum(v for k, v in cpu.items() if re.fullmatch(r"pg\d+", k))
    w = window(rep, log, samples)
    pubs = redis_cpu = out_bytes = cmds = None
    if w:
        a, b = at(samples, w[0]), at(samples, w[1])
        dt = b[0] - a[0]
        pubs, redis_cpu, out_bytes, cmds = ((b[i] - a[i]) / dt for i in (1, 2, 3, 4))
    tr = rep.get("traffic") or {}
    return {
        "rep": rep, "servers": servers, "pg": pg, "redis_cpu_watch": cpu.get("redis", 0.0),
        "pubs": pubs, "redis_cpu": redis_cpu, "out_bytes": out_bytes, "cmds": cmds,
        "rate": tr.get("ackedPerSecond", 0.0), "deliveries": tr.get("deliveredPerSecond", 0.0),
        "ratio": tr.get("deliveryRatio"), "p99": (tr.get("deliveryLatency") or {}).get("p99Ms"),
        "errors": sum(rep.get("errors", {}).values()), "load": rep.get("loadavgEnd", ""),
    }


def predict(phase, m, replicas, group_size, conns, users):
    """What the model says for this phase at the rate actually reached."""
    per_user = conns / users  # connections per account, each on another replica
    rate = m["rate"]
    members = 2 if phase == "direct" else group_size
    frames = members * per_user - 1 if phase != "idle" else 0
    shared = phase == "group-shared" and members >= SHARED_MIN
    idle = IDLE_CORES_PER_CONN * conns / replicas
    replica = idle + rate * (C_SEND_MS + frames * C_FRAME_MS) / 1000 / replicas
    if shared:
        replica += rate * C_SHARED_OPEN_MS / 1000  # every replica opens every shared envelope
    pubs = rate * (1 if shared else members)
    # Redis commands: the publishes and one rate-limit script per send.
    return {"replica": replica, "pg": rate * C_PG_MS / 1000, "pubs": pubs, "cmds": pubs + rate,
            "redis_cpu": rate * C_REDIS_MSG_MS / 1000, "frames": frames,
            "redis_out_msgs": rate * (replicas if shared else members * min(per_user, replicas))}


def ratio(meas, pred):
    if meas is None or not pred:
        return ""
    return "%.2f×" % (meas / pred)


def main():
    out, replicas, group_size, doc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    with open(os.path.join(out, "meta.txt")) as f:
        meta = [line.rstrip("\n").split(": ", 1) for line in f if ": " in line]
    phases = ["idle", "direct", "group-shared", "group-per-user"]
    rows = []
    first = None
    for ph in phases:
        m = measure(out, ph, replicas)
        first = first or m["rep"]
        conns = m["rep"]["connect"]["established"]
        users = int(m["rep"]["args"][m["rep"]["args"].index("-users") + 1])
        rows.append((ph, m, predict(ph, m, replicas, group_size, conns, users)))
    b = []
    p = b.append
    p("### Simulation at reduced scale (`make scale-sim`)\n")
    p("| | |\n|---|---|")
    for k, v in meta:
        p("| %s | %s |" % (k, v.replace("|", "\\|")))
    p("")
    p("Per phase: the rate reached, then each quantity as the model predicts it for that rate and shape "
      "and as measured (replica CPU is the mean of the %d replicas; PostgreSQL is this database's backends "
      "only; Redis figures are taken inside the traffic window from INFO).\n" % replicas)
    p("| phase | messages/s | frames per message | deliveries/s (ratio) | delivery p99 | errors | load at end |")
    p("|---|---:|---:|---:|---:|---:|---|")
    for ph, m, pr in rows:
        p("| %s | %.0f | %.0f | %.0f (%s) | %s | %d | %s |" % (
            ph, m["rate"], pr["frames"], m["deliveries"], "%.4f" % m["ratio"] if m["ratio"] is not None else "–",
            "%.1f ms" % m["p99"] if m["p99"] is not None else "–", m["errors"], m["load"]))
    p("")
    p("| phase | quantity | model | measured | measured / model |")
    p("|---|---|---:|---:|---:|")
    for ph, m, pr in rows:
        rep_mean = sum(m["servers"]) / len(m["servers"])
        spread = "%.3f–%.3f" % (min(m["servers"]), max(m["servers"]))
        p("| %s | CPU per replica (cores) | %.3f | %.3f (%s) | %s |" % (ph, pr["replica"], rep_mean, spread, ratio(rep_mean, pr["replica"])))
        if ph != "idle":
            p("| %s | replica CPU per message (ms, all replicas) | %.2f | %.2f | %s |" % (
                ph, pr["replica"] * replicas / m["rate"] * 1000 if m["rate"] else 0,
                rep_mean * replicas / m["rate"] * 1000 if m["rate"] else 0, ratio(rep_mean, pr["replica"])))
        p("| %s | PostgreSQL CPU (cores) | %.3f | %.3f | %s |" % (ph, pr["pg"], m["pg"], ratio(m["pg"], pr["pg"])))
        if m["pubs"] is not None:
            p("| %s | Redis publishes/s | %.0f | %.0f | %s |" % (ph, pr["pubs"], m["pubs"], ratio(m["pubs"], pr["pubs"])))
            p("| %s | Redis commands/s | %.0f | %.0f | %s |" % (ph, pr["cmds"], m["cmds"], ratio(m["cmds"], pr["cmds"])))
            p("| %s | Redis CPU (cores) | %.3f | %.3f | %s |" % (ph, pr["redis_cpu"], m["redis_cpu"], ratio(m["redis_cpu"], pr["redis_cpu"])))
            p("| %s | Redis output (MiB/s; model: pub/sub messages out per second) | %.0f msgs | %.2f MiB | |" % (
                ph, pr["redis_out_msgs"], m["out_bytes"] / 2**20))
    body = "\n".join(b)
    try:
        with open(doc) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    open_m, end_m = "<!-- scale-sim -->", "<!-- /scale-sim -->"
    block = open_m + "\n" + body.strip() + "\n" + end_m
    i, j = text.find(open_m), text.find(end_m)
    if i >= 0 and j > i:
        text = text[:i] + block + text[j + len(end_m):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(doc + ".tmp", "w") as f:
        f.write(text)
    os.replace(doc + ".tmp", doc)
    print(body)


if __name__ == "__main__":
    main()
