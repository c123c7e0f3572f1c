"""plots.py: the pictures of a bench run, for docs/performance.md
(python3-matplotlib, drawn without a display):

  - latency.png: how long a container's keys took to appear (and to go)
    after its event, with events and with the old tool's polling, as
    cumulative distributions on a log scale
  - resync_cost.png: CPU per quiet resync and registry requests per
    resync against the number of (synthetic) containers, per backend and
    mode
  - memory.png: private memory (RssAnon) at the end of each synthetic
    run against the number of containers, with the issue's targets

Each returns nothing when the part it draws was not in the results."""
import os


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(plt, fig, img, name):
    fig.tight_layout()
    path = os.path.join(img, name)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _cdf(ax, samples, label, style):
    got = sorted(s for s in samples if s is not None)
    if not got:
        return
    # a sample at or below 0 (the key came before the bench's own event
    # client saw the event) is drawn at the axis' floor
    got = [max(s, 0.1) for s in got]
    ax.step(got, [(i + 1) / len(got) for i in range(len(got))], where="post", label=label, linestyle=style)


def latency(results, img):
    out = results.get("parts", {}).get("latency")
    if not out or "error" in out:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, what, title in ((axes[0], "register", "Docker start event -> keys put"),
                            (axes[1], "deregister", "Docker die event -> keys deleted")):
        _cdf(ax, out["events"][what + "_ms"], "Docker events", "-")
        _cdf(ax, out["polling"][what + "_ms"], "polling every %d ms (old tool)" % out["interval_ms"], "--")
        ax.set_xscale("log")
        ax.set_xlabel("ms (log scale), seen from an etcd v3 watch")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("share of %d containers" % out["containers"])
    axes[0].legend(loc="lower right")
    fig.suptitle("registrar latency, %d real containers, 2 ports each%s"
                 % (out["containers"], " (quick run)" if out.get("quick") else ""))
    return _save(plt, fig, img, "latency.png")


def _scale_runs(out):
    """(backend and mode, containers, row) of each scale run that worked."""
    for key, r in out["runs"].items():
        if "error" not in r:
            cfg, n = key.split("/")
            yield cfg, int(n), r


def resync_cost(results, img):
    out = results.get("parts", {}).get("scale")
    if not out or "error" in out:
        return None
    series = {}
    for cfg, n, r in _scale_runs(out):
        series.setdefault(cfg, []).append((n, r["cpu_ms_per_resync"], r["registry_requests_per_resync"]))
    if not series:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for cfg in sorted(series):
        pts = sorted(series[cfg])
        ns = [p[0] for p in pts]
        axes[0].plot(ns, [p[1] for p in pts], marker="o", label=cfg)
        # log axes cannot show 0: a resync with no registry request sits on the floor
        axes[1].plot(ns, [max(p[2], 0.5) for p in pts], marker="o", label=cfg)
    axes[0].set_ylabel("registrar CPU ms per quiet resync")
    axes[1].set_ylabel("registry requests per quiet resync\n(0 drawn at 0.5)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("SYNTHETIC containers (replay server), 2 ports each")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.suptitle("Cost of a full resync against containers, interval %d ms%s"
                 % (out["interval_ms"], " (quick run)" if out.get("quick") else ""))
    return _save(plt, fig, img, "resync_cost.png")


# The targets of the issue that asked for these figures (private memory).
MEMORY_TARGETS_MIB = ((100, 2), (10000, 32))


def memory(results, img):
    out = results.get("parts", {}).get("scale")
    if not out or "error" in out:
        return None
    series = {}
    for cfg, n, r in _scale_runs(out):
        mem = r.get("memory_kib_end", {}).get("RssAnon")
        if mem is not None:
            series.setdefault(cfg, []).append((n, mem / 1024.0))
    if not series:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for cfg in sorted(series):
        pts = sorted(series[cfg])
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=cfg)
    ax.scatter([t[0] for t in MEMORY_TARGETS_MIB], [t[1] for t in MEMORY_TARGETS_MIB], marker="_", s=400,
               color="black", label="target", zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("SYNTHETIC containers (replay server), 2 ports each")
    ax.set_ylabel("private memory (RssAnon), MiB")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title("registrar's private memory after start-up and %d quiet resyncs%s"
                 % (out["resyncs"], " (quick run)" if out.get("quick") else ""), fontsize="medium")
    return _save(plt, fig, img, "memory.png")


def draw(results, img):
    os.makedirs(img, exist_ok=True)
    return [p for p in (latency(results, img), resync_cost(results, img), memory(results, img)) if p]
