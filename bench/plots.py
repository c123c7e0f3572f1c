"""plots.py: the pictures of a bench run, for docs/performance.md
(python3-matplotlib, drawn without a display):

  - latency.png: how long a container's keys took to appear (and to go)
    after its event, with events and with the old tool's polling, as
    cumulative distributions on a log scale
  - resync_cost.png: CPU per quiet resync and registry requests per
    resync against the number of (synthetic) containers, per backend and
    mode

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


def resync_cost(results, img):
    out = results.get("parts", {}).get("scale")
    if not out or "error" in out:
        return None
    series = {}
    for key, r in out["runs"].items():
        if "error" in r:
            continue
        cfg, n = key.split("/")
        series.setdefault(cfg, []).append((int(n), r["cpu_ms_per_resync"], r["registry_requests_per_resync"]))
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


def draw(results, img):
    os.makedirs(img, exist_ok=True)
    return [p for p in (latency(results, img), resync_cost(results, img)) if p]
