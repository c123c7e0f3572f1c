"""run.py: the registrar benchmarks, on real parts (a private dockerd, etcd
3.4 with v2 and v3, the Consul stand-in) and, beyond what one machine runs
as real containers, on the replay server (bench/replay_docker.py:
SYNTHETIC containers copied from one recorded by a real dockerd).

    sudo /usr/bin/python3 bench/run.py --all            # everything, about 45 minutes on 2 cores
    sudo /usr/bin/python3 bench/run.py --all --quick    # a smoke run, about 5 minutes
    sudo /usr/bin/python3 bench/run.py latency idle     # some parts only
    /usr/bin/python3 bench/run.py report                # the tables of the last results
    /usr/bin/python3 bench/run.py plot                  # its pictures, docs/img/*.png

The binary measured is --registrar, else $REGISTRAR_BIN, else build/registrar.
/usr/bin/python3: the pictures need Debian's python3-matplotlib.

Parts:
    latency   start/die event -> keys put/deleted, 200 real containers; events vs 3000 ms polling
    bulk      100 and 300 real containers running, registrar started -> all keys (v2, v3)
    idle      100 real containers: CPU per hour, requests per resync, memory (v3, v2, Consul)
    drift     a key deleted (overwritten) by hand -> back (v3, v2, Consul)
    scale     synthetic: 100, 1 000, 10 000 containers: resync cost, bulk, memory; a burst of 1 000
              (Consul stand-in rows up to --consul-max containers only)

Results go to bench/results/latest.json (--out); running some parts only
replaces those parts there.  Figures are printed, never asserted: this is
not a test.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

PARTS = ("latency", "idle", "drift", "bulk", "scale")
RESULTS = os.path.join(HERE, "results", "latest.json")


def machine(binary):
    def first(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_mib": mem, "kernel": platform.release(),
            "os": first(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
            "docker": first(["dockerd", "--version"]), "etcd": first(["etcd", "--version"]),
            "registrar": os.path.abspath(binary),
            "engine_commit": first(["git", "-C", os.path.dirname(os.path.dirname(os.path.abspath(binary))),
                                    "log", "-1", "--format=%h %s"]),
            "bench_commit": first(["git", "-C", HERE, "describe", "--always", "--dirty"])}


def load_results(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def save_results(path, results):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)


def run_parts(args, wanted):
    import context
    results = load_results(args.out)
    results.setdefault("parts", {})
    results["machine"] = machine(args.registrar)
    results["command"] = " ".join(["bench/run.py"] + sys.argv[1:])
    ctx = context.Context(args)
    try:
        for name in wanted:
            module = __import__(name)
            started = time.monotonic()
            print("== %s%s" % (name, " (quick)" if args.quick else ""), flush=True)
            try:
                out = module.run(ctx)
            except Exception as e:  # noqa: BLE001 - the other parts still run
                traceback.print_exc()
                out = {"error": "%s: %s" % (type(e).__name__, e)}
            out["quick"] = bool(args.quick)
            out["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
            out["seconds"] = round(time.monotonic() - started, 1)
            results["parts"][name] = out
            save_results(args.out, results)
            print(report_part(name, out), flush=True)
    finally:
        ctx.cleanup()
    return results


def report_part(name, out):
    import report
    return report.part(name, out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("parts", nargs="*", help="latency bulk idle drift scale, or report, plot")
    ap.add_argument("--all", action="store_true", help="every part, then the pictures")
    ap.add_argument("--quick", action="store_true", help="a smoke run: few containers, short waits")
    ap.add_argument("--registrar", default=os.environ.get("REGISTRAR_BIN") or os.path.join(HERE, "..", "build", "registrar"),
                    help="the binary measured (default: $REGISTRAR_BIN, else build/registrar)")
    ap.add_argument("--out", default=RESULTS, help="results file (JSON)")
    ap.add_argument("--img", default=os.path.join(HERE, "..", "docs", "img"), help="where plot writes")
    ap.add_argument("--latency-containers", type=int, default=200)
    ap.add_argument("--idle-seconds", type=int, default=60)
    ap.add_argument("--drift-deletions", type=int, default=50)
    ap.add_argument("--scale-sizes", default="100,1000,10000")
    ap.add_argument("--scale-configs", default="",
                    help='scale: only these, e.g. "v2 prune,v3 ttl" (default: all six)')
    ap.add_argument("--consul-max", type=int, default=100,
                    help="scale: no Consul stand-in rows above this many containers (it fills in N^2)")
    ap.add_argument("--repeat", type=int, default=3, help="bulk: runs of each, the median is reported")
    args = ap.parse_args(argv)

    wanted = list(PARTS) if args.all else [p for p in args.parts if p in PARTS]
    unknown = [p for p in args.parts if p not in PARTS + ("report", "plot")]
    if unknown:
        ap.error("unknown part %s (parts: %s, report, plot)" % (", ".join(unknown), " ".join(PARTS)))
    if not wanted and not args.parts:
        ap.error("name the parts to run, or --all")
    if wanted:
        if os.geteuid() != 0:
            ap.error("the parts start their own dockerd and etcd: run as root")
        if not os.access(args.registrar, os.X_OK):
            ap.error("%s is not an executable: build first (cmake --build build)" % args.registrar)
        run_parts(args, wanted)
    results = load_results(args.out)
    if args.all or "plot" in args.parts:
        import plots
        for path in plots.draw(results, args.img):
            print("drew", path)
    if args.all or "report" in args.parts:
        import report
        print(report.tables(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
