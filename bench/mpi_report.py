#!/usr/bin/env python3
"""bench/MPI.md from bench/mpi.sh's all-reduce times and bench/RESULTS.md's step times.

The scaling model (docs/cluster.md): a ring all-reduce of S bytes over N nodes sends and
receives 2 (N - 1) / N * S bytes per node in 2 (N - 1) messages, so it takes
    T_ar(N) = 2 (N - 1) / N * S / B + 2 (N - 1) * a
with B the link bandwidth and a the latency of one message. Each node keeps the benchmark's
batch (the global batch grows with N; weak scaling) and its measured step time T, and the
all-reduce does not overlap the computation (aec reduces after the backward pass), so a step
takes T + T_ar(N) and the throughput is N * batch / (T + T_ar(N))."""
import datetime, json, re, sys

LATENCY = 20e-6          # one message over TCP on Ethernet; RDMA is nearer 2 us
NETWORKS = [("25 Gb/s", 25e9 / 8), ("100 Gb/s", 100e9 / 8)]
NODES = [2, 4, 8, 16, 32, 64]


def step_times(results_md):
    rows = {}
    for line in open(results_md):
        m = re.match(r"\| (\w+) \| (\d+) \| ([\d.]+) \|", line)
        if m and m.group(1) not in rows:
            rows[m.group(1)] = (int(m.group(2)), float(m.group(3)))
    return rows


def ring_ms(nbytes, n, bandwidth):
    return 1e3 * (2 * (n - 1) / n * nbytes / bandwidth + 2 * (n - 1) * LATENCY)


def main(jsonl, results_md):
    runs = [json.loads(l) for l in open(jsonl) if l.strip()]
    steps = step_times(results_md)
    models = [m for m in dict.fromkeys(r["model"] for r in runs) if m in steps]
    now = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
    print("# Data-parallel overhead\n")
    print(f"{now}; `make bench-mpi` (bench/mpi.sh): one MPI_Allreduce of the gradient arena per step, timed on")
    print("this machine (ranks over shared memory, Open MPI), beside the step time of one process from")
    print("bench/RESULTS.md. On one machine this measures the cost of the all-reduce, not scaling: the")
    print("ranks share its cores. Fastest and median of the timed calls; on a shared, loaded machine the")
    print("median includes waiting for a core.\n")
    print("| model | batch | parameters | gradient MiB | step ms (1 process) | ranks | all-reduce ms fastest | median | overhead (fastest / step) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in models:
        batch, step = steps[m]
        for r in (r for r in runs if r["model"] == m):
            mib = r["floats"] * 4 / 2**20
            print(f"| {m} | {batch} | {r['floats']:,} | {mib:.1f} | {step:.1f} | {r['ranks']} | {r['fastest_ms']:.2f} | "
                  f"{r['median_ms']:.2f} | {100 * r['fastest_ms'] / step:.1f}% |")
    print("\n## Expected scaling over nodes (a model, not a measurement)\n")
    print(__doc__.split("\n\n", 1)[1].strip().replace('"""', ""))
    print(f"\nWith a = {LATENCY * 1e6:.0f} us. Efficiency = throughput / (N x the throughput of one node):\n")
    header = "| model | network | " + " | ".join(f"{n} nodes" for n in NODES) + " |"
    print(header)
    print("|---|---|" + "---|" * len(NODES))
    for m in models:
        batch, step = steps[m]
        nbytes = next(r["floats"] for r in runs if r["model"] == m) * 4
        for name, bw in NETWORKS:
            cells = []
            for n in NODES:
                t_ar = ring_ms(nbytes, n, bw)
                cells.append(f"{100 * step / (step + t_ar):.0f}% ({t_ar:.1f} ms)")
            print(f"| {m} (step {step:.0f} ms) | {name} | " + " | ".join(cells) + " |")
    print("\nIn brackets: T_ar(N). The step times are those of this 2-core machine; a node with more")
    print("cores shortens T, and the efficiency falls as T_ar / T grows.")

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
