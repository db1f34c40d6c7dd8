"""run.py - cnnlua against PyTorch on the same CPU, in the same invocation (make bench / make bench-quick).

    python3 bench/run.py --build build [--quick] [--only NAME] [--reps R] [--seconds S]

Every line of the table is one workload run by two long-lived worker processes, bench/worker.lua
under cnnlua and bench/worker.py under PyTorch, which build the same network (bench/models.*) or
op on fixed random inputs. After a warm-up, the driver asks them in turn for timed repetitions,
alternating which goes first, so that a change in the machine's speed during the run touches both
sides alike; the table shows the medians. Each worker is a separate process, so its peak resident
set (VmHWM) is its own. GFLOP/s counts the multiply-adds of convolutions and linear layers as if
computed directly (x2 per multiply-add; a training step counts 3 passes: forward, input and weight
gradients) and sets that against the sgemm peak of OpenBLAS measured at the start of the same run:
Winograd convolutions and skipped padding do less arithmetic than counted, so more than 100% of the
GEMM peak is possible.

The machine must be otherwise idle: both sides run 2 OpenMP threads whose barriers wait for each
other, and a third busy process stalls them for whole scheduler time slices. The load average is
printed at the start and the end.

Before each repetition the driver also measures how far apart the two cores are (bench/core_latency.c:
the round trip of a cache line between CPU 0 and CPU 1). A virtual machine's cores may share a
cache or not, and the host switches between the two while the benchmark runs; with the cores far
apart, data one thread writes and the other reads crosses between caches, which slows both sides,
cnnlua more than PyTorch. The network table therefore also gives the ratios of the repetitions run
each way.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

MODELS = [
    ("LeNet-5 b64 SGD", "lenet"),
    ("Fashion-MNIST CNN b128 Adam", "fashion"),
    ("VGG-style b128 Adam", "vgg"),
    ("ResNet-18 b32 SGD", "resnet18"),
]

# (label, op arguments, forward FLOPs)
def conv(n, c, h, w, o, k, s, p, g=1):
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    flops = 2 * n * o * oh * ow * (c // g) * k * k
    label = "conv %dx%d s%d %s %d->%d %dx%d b%d" % (k, k, s, "dw" if g > 1 else "", c, o, h, w, n)
    return (" ".join(label.split()), ["conv", n, c, h, w, o, k, k, s, p, g], flops)


OPS = [
    conv(64, 1, 28, 28, 6, 5, 1, 2),
    conv(64, 6, 14, 14, 16, 5, 1, 0),
    conv(128, 3, 32, 32, 32, 3, 1, 1),
    conv(128, 32, 32, 32, 32, 3, 1, 1),
    conv(32, 64, 8, 8, 64, 3, 1, 1),
    conv(32, 128, 8, 8, 256, 3, 2, 1),
    conv(32, 256, 4, 4, 256, 3, 1, 1),
    conv(32, 64, 8, 8, 128, 1, 2, 0),
    conv(32, 128, 16, 16, 128, 3, 1, 1, g=128),
    ("max_pool 2x2 128x32x28x28", ["maxpool", 128, 32, 28, 28, 2, 2], 0),
    ("batch_norm train 128x32x32x32", ["batchnorm", 128, 32, 32, 32], 0),
    ("relu 128x32x32x32", ["relu", 128, 32, 32, 32], 0),
    ("linear 128x1568->128", ["linear", 128, 1568, 128], 2 * 128 * 1568 * 128),
    ("linear 256x1024->1024", ["linear", 256, 1024, 1024], 2 * 256 * 1024 * 1024),
]


class Worker:
    def __init__(self, argv, env):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                     cwd=ROOT, text=True, bufsize=1)
        words = self.read().split()
        if not words or words[0] != "ready":
            raise RuntimeError("worker %s did not start: %r" % (" ".join(argv), words))
        self.flops = int(words[1]) if len(words) > 1 else 0

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("worker exited (status %s)" % self.proc.wait())
        return line.strip()

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read()

    def time(self, mode, steps):
        return float(self.ask("time %s %d" % (mode, steps)))

    def close(self):
        rss = int(self.ask("rss"))
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait()
        return rss


def sgemm_peak(build, env):
    """GFLOP/s of OpenBLAS sgemm on square matrices, best of the sizes tried."""
    out = subprocess.run([os.path.join(build, "bench", "sgemm_peak")], env=env, capture_output=True, text=True,
                         check=True)
    return float(out.stdout.split()[0])


FAR_CORES_NS = 150  # a round trip above this: the two cores share no cache


def core_latency(build):
    """Round trip of a cache line between CPU 0 and CPU 1 in ns, or None on a single core."""
    if (os.cpu_count() or 1) < 2:
        return None
    out = subprocess.run([os.path.join(build, "bench", "core_latency")], capture_output=True, text=True)
    return float(out.stdout.split()[0]) if out.returncode == 0 else None


def ratios_by_distance(times, far):
    """{"near": (repetitions, ratio), "far": ...}: cnnlua's speed over PyTorch's from the medians of the
    repetitions run with the cores near each other or far apart; ratio None where there were none."""
    result = {}
    for where, wanted in (("near", False), ("far", True)):
        picked = [i for i, f in enumerate(far) if f == wanted]
        ratio = None
        if picked:
            ratio = (statistics.median(times["torch"][i] for i in picked) /
                     statistics.median(times["cnn"][i] for i in picked))
        result[where] = (len(picked), ratio)
    return result


def run_workload(args, label, argv_tail, flops_fwd, env_cnn, env_torch, batch_of):
    cnn = Worker([os.path.join(args.build, "cnnlua"), os.path.join(HERE, "worker.lua")] + argv_tail, env_cnn)
    torch = Worker(["/usr/bin/python3", os.path.join(HERE, "worker.py")] + argv_tail, env_torch)
    flops_fwd = flops_fwd or torch.flops
    result = {"label": label, "flops": flops_fwd, "batch": batch_of}
    for mode in ("train", "infer"):
        # warm-up, then the step count that makes a repetition last about args.seconds on the slower side
        for w in (cnn, torch):
            w.time(mode, 2)
        per_step = max(cnn.time(mode, 2), torch.time(mode, 2)) / 2
        steps = max(1, int(round(args.seconds / max(per_step, 1e-6))))
        times, far = {"cnn": [], "torch": []}, []
        for rep in range(args.reps):
            order = [("cnn", cnn), ("torch", torch)]
            if rep % 2:
                order.reverse()
            latency = core_latency(args.build)
            far.append(latency is not None and latency > FAR_CORES_NS)
            for name, w in order:
                times[name].append(w.time(mode, steps) / steps)
            if args.verbose:
                print("  %s %s rep %d: round trip %s ns, cnnlua %.2f ms, torch %.2f ms" %
                      (label, mode, rep + 1, "%.0f" % latency if latency is not None else "-",
                       1e3 * times["cnn"][-1], 1e3 * times["torch"][-1]), file=sys.stderr)
        result[mode] = {k: statistics.median(v) for k, v in times.items()}
        result[mode + "_by_distance"] = ratios_by_distance(times, far)
    result["rss"] = {"cnn": cnn.close(), "torch": torch.close()}
    return result


def fmt_rate(x):
    return "%9.0f" % x if x >= 100 else "%9.1f" % x


def print_model_table(rows, peak):
    head = ("%-28s %9s %9s %6s  %9s %9s %6s  %7s %5s  %7s %7s %5s" %
            ("workload (images/s)", "train", "torch", "ratio", "infer", "torch", "ratio",
             "GFLOP/s", "%peak", "RSS MB", "torch", "ratio"))
    print(head)
    print("-" * len(head))
    for r in rows:
        b = r["batch"]
        tr = {k: b / v for k, v in r["train"].items()}
        inf = {k: b / v for k, v in r["infer"].items()}
        gflops = 3 * r["flops"] / r["train"]["cnn"] / 1e9  # dense-equivalent
        rss = r["rss"]
        print("%-28s %s %s %5.2fx  %s %s %5.2fx  %7.1f %4.0f%%  %7.0f %7.0f %5.2f" %
              (r["label"], fmt_rate(tr["cnn"]), fmt_rate(tr["torch"]), tr["cnn"] / tr["torch"],
               fmt_rate(inf["cnn"]), fmt_rate(inf["torch"]), inf["cnn"] / inf["torch"],
               gflops, 100 * gflops / peak, rss["cnn"] / 1024, rss["torch"] / 1024, rss["cnn"] / rss["torch"]))


def print_distance_lines(rows):
    """Per network: the ratios of the repetitions run with the cores near each other and far apart."""
    def part(r, mode, where):
        count, ratio = r[mode + "_by_distance"][where]
        return "%s %s" % (mode, "%.2fx (%d)" % (ratio, count) if ratio else "-")

    print("by core distance (ratio of medians, repetitions in brackets; far: round trip above %d ns)" % FAR_CORES_NS)
    for r in rows:
        print("  %-26s near: %-16s %-16s far: %-16s %s" %
              (r["label"], part(r, "train", "near"), part(r, "infer", "near"), part(r, "train", "far"),
               part(r, "infer", "far")))


def print_op_table(rows, peak):
    head = ("%-34s %9s %9s %6s  %9s %9s %6s  %7s %5s" %
            ("op (milliseconds per call)", "fwd+bwd", "torch", "ratio", "fwd", "torch", "ratio", "GFLOP/s", "%peak"))
    print(head)
    print("-" * len(head))
    for r in rows:
        tr, inf = r["train"], r["infer"]
        gf = ""
        if r["flops"]:
            g = 3 * r["flops"] / tr["cnn"] / 1e9
            gf = "%7.1f %4.0f%%" % (g, 100 * g / peak)
        print("%-34s %9.3f %9.3f %5.2fx  %9.3f %9.3f %5.2fx  %s" %
              (r["label"], 1e3 * tr["cnn"], 1e3 * tr["torch"], tr["torch"] / tr["cnn"],
               1e3 * inf["cnn"], 1e3 * inf["torch"], inf["torch"] / inf["cnn"], gf))


def startup_ms(build):
    """Median wall time of `cnnlua -e ''` over 20 runs."""
    times = []
    for _ in range(20):
        t = time.perf_counter()
        subprocess.run([os.path.join(build, "cnnlua"), "-e", ""], check=True)
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and the models only")
    ap.add_argument("--only", help="run the workloads whose label contains this text")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--seconds", type=float, help="target length of one timed repetition")
    ap.add_argument("--threads", type=int, default=2, help="threads of both sides (default 2)")
    ap.add_argument("--verbose", action="store_true", help="print every repetition's times on stderr")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time by CPU seconds instead of wall-clock (for --threads 1 on a busy machine)")
    args = ap.parse_args()
    args.reps = args.reps or (3 if args.quick else 5)
    args.seconds = args.seconds or (0.4 if args.quick else 1.0)

    env_cnn = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    env_torch = dict(os.environ, OPENBLAS_NUM_THREADS="1", BENCH_TORCH_THREADS=str(args.threads))
    if args.cpu_time:
        env_cnn["BENCH_CPU_TIME"] = env_torch["BENCH_CPU_TIME"] = "1"
    import torch  # only for the version line
    peak = sgemm_peak(args.build, env_cnn)
    print("cnnlua vs PyTorch %s on %d cores, %d threads each; medians of %d repetitions after warm-up%s" %
          (torch.__version__, os.cpu_count(), args.threads, args.reps, ", CPU time" if args.cpu_time else ""))
    print("PyTorch configuration: torch.set_num_threads(%d), OPENBLAS_NUM_THREADS=1, oneDNN %s, "
          "inference_mode, zero_grad(set_to_none=True)" %
          (args.threads, "on" if torch.backends.mkldnn.is_available() else "off"))
    print("OpenBLAS sgemm peak (%d threads, this run): %.1f GFLOP/s;  `cnnlua -e ''` starts in %.1f ms" %
          (args.threads, peak, startup_ms(args.build)))
    print("load average at the start: %.2f (other processes on the cores slow both sides, unevenly)" %
          os.getloadavg()[0])
    latency = core_latency(args.build)
    if latency is not None:
        print("round trip of a cache line between the two cores: %.0f ns (%s)" %
              (latency, "far apart: no shared cache" if latency > FAR_CORES_NS else "near: a shared cache"))
    print()

    selected = lambda label: args.only is None or args.only.lower() in label.lower()
    rows = []
    for label, name in MODELS:
        if selected(label):
            batch = int(label.split(" b")[1].split()[0])
            rows.append(run_workload(args, label, ["model", name], 0, env_cnn, env_torch, batch))
    if rows:
        print_model_table(rows, peak)
        print_distance_lines(rows)
        print()
    if not args.quick:
        op_rows = [run_workload(args, label, ["op"] + [str(a) for a in spec], flops, env_cnn, env_torch, spec[1])
                   for label, spec, flops in OPS if selected(label)]
        if op_rows:
            print_op_table(op_rows, peak)
            print()
    print("ratios: above 1 means cnnlua is faster (or, for RSS, that cnnlua uses that fraction of PyTorch's memory);")
    print("GFLOP/s: cnnlua's training step counted as dense convolutions (Winograd does less arithmetic)")
    print("load average at the end: %.2f" % os.getloadavg()[0])


if __name__ == "__main__":
    sys.exit(main())
