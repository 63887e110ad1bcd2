#!/usr/bin/env python3
"""torch_ddp_mlp.py: the PyTorch peer of cldp-bench's standard workload, for side-by-side figures.

The same model and step as cldp-bench: an MLP 784-1024-1024-10 (ReLU), softmax cross-entropy
(the mean over the global batch), SGD with momentum 0.9 at lr 0.01, global batch 512 of uniform
random features in [-1, 1) and random labels. Data-parallel with torch.distributed's DDP over gloo
on 127.0.0.1, one process per rank (multiprocessing spawn), one thread per rank
(torch.set_num_threads(1)), the global batch split evenly over the ranks.

Each rank also times its own matmuls of one step's shapes (forward x.W^T, backward dW = dY^T.X and
dX = dY.W for every layer, at its shard's rows) with torch.mm, while the other ranks do the same:
the GEMM rate this machine gives PyTorch, to set beside cldp's.

Prints one line per rank count and, with --json, one JSON object per rank count:
  {"ranks": R, "samples_per_s": ..., "step_ms": ..., "gemm_ms": ..., "gemm_gflops": ..., "blas": ...}
Run: python3 torch_ddp_mlp.py --ranks 1,2 [--steps 10] [--warmup 3] [--json]
(Debian: apt-get install python3-torch libopenblas0-pthread; cldp-bench --only profile runs it.)
"""
import argparse
import json
import os
import socket
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(description="PyTorch DDP peer of cldp-bench's MLP (784-1024-1024-10, batch 512)")
    p.add_argument("--ranks", default="1,2", help="rank counts to run, comma-separated (default 1,2)")
    p.add_argument("--batch", type=int, default=512, help="global batch (default 512)")
    p.add_argument("--hidden", type=int, default=1024, help="hidden units of both layers (default 1024)")
    p.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--gemm-reps", type=int, default=3, help="timed repetitions of the step's matmuls (default 3)")
    p.add_argument("--json", action="store_true", help="one JSON line per rank count")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=300, help="seconds a run may take before its ranks are "
                   "stopped and it counts as failed (default 300)")
    a = p.parse_args(argv)
    a.ranks = [int(r) for r in a.ranks.split(",")]
    if any(r < 1 for r in a.ranks) or a.batch < 1 or a.steps < 1 or a.warmup < 0:
        p.error("ranks, batch and steps must be positive")
    return a


def blas_in_use():
    """The BLAS library mapped into this process, and OpenBLAS's core and thread count if it is OpenBLAS."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if os.path.basename(path).startswith(("libblas", "libopenblas", "libmkl", "libblis")):
                    libs.add(path)
    except OSError:
        pass
    desc = ", ".join(sorted(libs)) or "no BLAS library mapped"
    try:
        import ctypes
        for path in sorted(libs):
            lib = ctypes.CDLL(path)
            if hasattr(lib, "openblas_get_corename"):
                lib.openblas_get_corename.restype = ctypes.c_char_p
                lib.openblas_get_num_threads.restype = ctypes.c_int
                desc += " (OpenBLAS core %s, %d thread(s))" % (lib.openblas_get_corename().decode(),
                                                              lib.openblas_get_num_threads())
                break
    except OSError:
        pass
    return desc


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rank_main(rank, world, port, a, queue):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import torch
    import torch.distributed as dist
    import torch.nn as nn

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank, world_size=world)
    torch.manual_seed(a.seed)  # every rank draws the same model and data; DDP also broadcasts rank 0's
    h, b = a.hidden, a.batch
    shard = b // world + (1 if rank < b % world else 0)
    first = rank * (b // world) + min(rank, b % world)
    model = nn.Sequential(nn.Linear(784, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 10))
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    n = 4 * b  # as cldp-bench: four batches of random data, cycled
    x = torch.rand(n, 784) * 2 - 1
    y = torch.randint(0, 10, (n,))
    # the mean over the global batch: each rank's sum / b, and DDP averages over ranks (x world)
    lossf = nn.CrossEntropyLoss(reduction="sum")
    scale = float(world) / b

    def step(i):
        at = (i * b) % (n - b + 1) + first
        opt.zero_grad(set_to_none=True)
        loss = lossf(ddp(x[at:at + shard]), y[at:at + shard]) * scale
        loss.backward()
        opt.step()

    for i in range(a.warmup):
        step(i)
    dist.barrier()
    t0 = time.perf_counter()
    for i in range(a.steps):
        step(a.warmup + i)
    dist.barrier()
    step_ms = (time.perf_counter() - t0) * 1e3 / a.steps

    # the step's matmuls alone, at this rank's rows, all ranks at once (as in the step)
    dims = [784, h, h, 10]
    mats = []
    for l in range(3):
        i_, o_ = dims[l], dims[l + 1]
        X, W, dY = torch.rand(shard, i_), torch.rand(o_, i_), torch.rand(shard, o_)
        mats.append((X, W, dY, l > 0))
    flop = sum(2.0 * shard * X.shape[1] * W.shape[0] * (3 if dx else 2) for X, W, dY, dx in mats)

    def gemms():
        for X, W, dY, dx in mats:
            torch.mm(X, W.t())      # forward x.W^T
            torch.mm(dY.t(), X)     # dW = dY^T.X
            if dx:
                torch.mm(dY, W)     # dX = dY.W (not for the first layer)

    gemms()
    best = 1e30
    for _ in range(a.gemm_reps):
        dist.barrier()
        g0 = time.perf_counter()
        gemms()
        best = min(best, time.perf_counter() - g0)
    gemm_ms = best * 1e3
    if rank == 0:
        queue.put({"ranks": world, "batch": b, "steps": a.steps, "step_ms": step_ms,
                   "samples_per_s": b / step_ms * 1e3, "gemm_ms": gemm_ms, "gemm_flop": flop,
                   "gemm_gflops": flop / gemm_ms * 1e-6, "threads": torch.get_num_threads(),
                   "torch": torch.__version__, "blas": blas_in_use()})
    dist.barrier()
    dist.destroy_process_group()


def main(argv):
    a = parse_args(argv)
    try:
        import torch.multiprocessing as mp
    except ImportError:
        print("peer: skipped (python3-torch not installed: apt-get install python3-torch libopenblas0-pthread)")
        return 3
    ctx = mp.get_context("spawn")
    for world in a.ranks:
        q = ctx.Queue()
        port = free_port()
        procs = [ctx.Process(target=rank_main, args=(r, world, port, a, q)) for r in range(world)]
        for p in procs:
            p.start()
        deadline = time.monotonic() + a.timeout
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        late = [r for r, p in enumerate(procs) if p.is_alive()]
        for r in late:
            procs[r].terminate()
            procs[r].join()
        if late:
            print("peer: the %d-rank run took longer than %g s (--timeout); ranks %s stopped" % (world, a.timeout, late),
                  file=sys.stderr)
            return 1
        if any(p.exitcode != 0 for p in procs):
            print("peer: a rank of the %d-rank run failed (exit codes %s)" % (world, [p.exitcode for p in procs]),
                  file=sys.stderr)
            return 1
        r = q.get(timeout=30)  # rank 0 put it before exiting 0
        print("peer: PyTorch %s DDP gloo, %d rank(s) x 1 thread, batch %d: %.1f ms/step, %.0f samples/s; "
              "its matmuls alone %.1f ms (%.1f GFLOP/s); BLAS %s"
              % (r["torch"], world, r["batch"], r["step_ms"], r["samples_per_s"], r["gemm_ms"], r["gemm_gflops"],
                 r["blas"]))
        if a.json:
            print(json.dumps(r))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
