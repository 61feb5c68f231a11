"""PNG plots drawn from results.json alone (matplotlib, Agg backend). Each function returns the
written path, or None when its section was not run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ja_adapt.models.plan import GIB  # noqa: E402
from ja_adapt.report.status import ok  # noqa: E402

COLORS = {"lora": "tab:blue", "full": "tab:orange", "base": "tab:gray"}


def _color(label: str, i: int = 0) -> str:
    return COLORS.get(label.split()[0], f"C{i + 2}")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def loss_curves(res: dict, path: Path) -> Path | None:
    """Train (left) and validation (right) loss, raw (thin, faded) and smoothed, one line per run of
    the primary LoRA and full groups."""
    curves = res["learning_dynamics"]["curves"]
    wanted = {v for v in res["primary"].values() if v}
    runs = {n: c for n, c in curves.items() if c["group"] in wanted} or curves
    if not runs:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (_name, c) in enumerate(sorted(runs.items())):
        col = _color(c["group"], i)
        for ax, key in zip(axes, ("train", "val")):
            pts = c[key]
            if not pts:
                continue
            x = [p[0] for p in pts]
            ax.plot(x, [p[1] for p in pts], color=col, alpha=0.25, lw=0.8)
            ax.plot(x, [p[2] for p in pts], color=col, lw=1.6, label=f"{c['group']} s{c['seed']}")
    for ax, title in zip(axes, ("training loss (raw faded, smoothed solid)", "validation loss")):
        ax.set_xlabel("step")
        ax.set_ylabel("nats / token")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    return _save(fig, path)


def learning_vs_forgetting(res: dict, path: Path) -> Path | None:
    """Japanese gain (bits/byte, base − checkpoint) against the other languages' loss (checkpoint −
    base), one marker per checkpoint, connected in step order."""
    forget = (res.get("generalization_results") or {}).get("catastrophic_forgetting") or {}
    ck = forget.get("checkpoints") or {}
    if not ck:
        return None
    langs = forget.get("langs", [])
    fig, axes = plt.subplots(1, len(langs), figsize=(5.5 * len(langs), 4), squeeze=False)
    for ax, lang in zip(axes[0], langs):
        for i, (name, c) in enumerate(sorted(ck.items())):
            pts = [p for p in c["points"] if p.get("ja_gain") is not None and p.get(f"{lang}_loss") is not None]
            ax.plot(
                [p["ja_gain"] for p in pts],
                [p[f"{lang}_loss"] for p in pts],
                "o-",
                ms=4,
                color=_color(c["group"], i),
                label=name,
            )
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xlabel("Japanese gain (base − model bits/byte)")
        ax.set_ylabel(f"{lang} loss (model − base bits/byte)")
        ax.set_title(f"learning vs forgetting: {lang}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def _bars(ax, labels: list[str], series: dict[str, list], ylabel: str, errs: dict | None = None):
    n = len(series)
    width = 0.8 / max(n, 1)
    for i, (name, vals) in enumerate(series.items()):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(labels))]
        e = (errs or {}).get(name)
        ax.bar(
            xs, [v if v is not None else 0 for v in vals], width, yerr=e, capsize=3, label=name, color=_color(name, i)
        )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def script_accuracy(res: dict, path: Path) -> Path | None:
    jp = res.get("japanese_performance")
    if not ok(jp):
        return None
    acc = jp["character_accuracy"]
    scripts = ["hiragana", "katakana", "kanji", "other", "overall"]
    fig, ax = plt.subplots(figsize=(8, 4))
    _bars(
        ax,
        scripts,
        {g: [v[s]["mean"] for s in scripts] for g, v in acc.items()},
        "character accuracy",
        {g: [v[s]["sd"] or 0 for s in scripts] for g, v in acc.items()},
    )
    ax.set_title("character accuracy by script (mean ± sd over seeds)")
    return _save(fig, path)


def rank_sensitivity(res: dict, path: Path) -> Path | None:
    rs = res.get("rank_sensitivity")
    if not ok(rs):
        return None
    pts = rs["points"]
    fig, ax = plt.subplots(figsize=(6, 4))
    x = [p["params_trainable"]["mean"] for p in pts]
    y = [p["metric"]["mean"] for p in pts]
    ax.errorbar(x, y, yerr=[p["metric"]["sd"] or 0 for p in pts], fmt="o-", capsize=3)
    for p, xi, yi in zip(pts, x, y):
        ax.annotate(f"r={p['rank']}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel(rs["metric"])
    ax.set_title("LoRA rank sensitivity")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def lr_sensitivity(res: dict, path: Path) -> Path | None:
    ls = res.get("lr_sensitivity")
    if not ok(ls):
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (method, s) in enumerate(sorted(ls["by_method"].items())):
        pts = s["points"]
        ax.errorbar(
            [p["lr"] for p in pts],
            [p["metric"]["mean"] for p in pts],
            yerr=[p["metric"]["sd"] or 0 for p in pts],
            fmt="o-",
            capsize=3,
            label=method,
            color=_color(method, i),
        )
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel(next(iter(ls["by_method"].values()))["metric"])
    ax.set_title("learning-rate sensitivity")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def precision_comparison(res: dict, path: Path) -> Path | None:
    pc = res.get("precision_comparison")
    if not ok(pc):
        return None
    panels = [("peak_mem_bytes", "peak memory (GiB)", GIB), ("time_per_step_s", "seconds / step", 1)]
    if pc.get("metric"):  # a probe has no quality panel
        panels.insert(0, ("metric", pc["metric"], 1))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8))
    for method, rows in pc["by_method"].items():
        precs = sorted(rows)
        for ax, (key, ylabel, scale) in zip(axes, panels):
            _bars(ax, precs, {method: [(rows[p][key]["mean"] or 0) / scale for p in precs]}, ylabel)
    fig.suptitle("precision: time and memory (probe)" if pc.get("purpose") == "probe" else "precision comparison")
    return _save(fig, path)


def memory_time(res: dict, path: Path) -> Path | None:
    """Peak / mean memory, optimizer and model state (GiB), and training time per group."""
    mem = res["memory_usage"]["groups"]
    tim = res["time_efficiency"]["groups"]
    labels = [v for v in res["primary"].values() if v] or sorted(mem)  # sweeps have their own plots
    if not labels:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    keys = ("peak_mem_bytes", "mean_mem_bytes", "optimizer_state_bytes", "model_state_bytes")
    _bars(
        axes[0],
        [k.replace("_bytes", "").replace("_", " ") for k in keys],
        {g: [(mem[g][k]["mean"] or 0) / GIB for k in keys] for g in labels},
        "GiB",
    )
    axes[0].set_title(f"memory ({mem[labels[0]].get('memory_kind')})")
    _bars(
        axes[1],
        ["total", "to target"],
        {g: [tim[g]["train_time_s"]["mean"], tim[g]["time_to_target_s"]["mean"]] for g in labels},
        "seconds",
        {g: [tim[g]["train_time_s"]["sd"] or 0, tim[g]["time_to_target_s"]["sd"] or 0] for g in labels},
    )
    axes[1].set_title("training time")
    return _save(fig, path)


def predicted_memory(res: dict, path: Path) -> Path | None:
    pm = res["memory_usage"].get("predicted_vs_measured")
    if not pm:
        return None
    names = sorted(pm)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names)), 4))
    w = 0.27
    ax.bar(
        [i - w for i in range(len(names))],
        [(pm[n].get("predicted_allocated_bytes") or 0) / GIB for n in names],
        w,
        label="predicted allocated (plan)",
        color="tab:olive",
    )
    ax.bar(
        range(len(names)),
        [pm[n]["predicted_total_bytes"] / GIB for n in names],
        w,
        label="predicted total (plan)",
        color="tab:green",
    )
    ax.bar(
        [i + w for i in range(len(names))],
        [(pm[n]["measured_peak_bytes"] or 0) / GIB for n in names],
        w,
        label=f"measured peak ({pm[names[0]].get('memory_kind')})",
        color="tab:purple",
    )
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("GiB")
    ax.set_title("predicted vs measured memory")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _bound(point: dict, side: str) -> float:
    """A grid point's bits/char interval bound (the value itself without an interval; 0 without either)."""
    return (point.get("ja_bits_per_char_ci") or {}).get(side) or point["ja_bits_per_char"] or 0


def lr_tuning(res: dict, path: Path) -> Path | None:
    """Each method's grid: final validation loss (left) and held-out Japanese bits/char with its
    95% document-bootstrap interval (right) against the tuned value, log scale; the choice circled,
    each entry's tie band shaded, the seeds' range of validation loss at the choice as a bar."""
    t = res.get("lr_tuning") or {}
    if not ok(t):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (m, pts) in enumerate(sorted(t["points"].items())):
        x = [p["value"] for p in pts]
        axes[0].plot(
            x,
            [p["val_loss"] if p["val_loss"] is not None else float("nan") for p in pts],
            "o-",
            color=_color(m, i),
            label=m,
        )
        band = (t.get("band") or {}).get(m)
        if band:  # the tie band: within the tolerance of the lowest loss
            axes[0].fill_between([min(x), max(x)], *band, color=_color(m, i), alpha=0.15, lw=0)
        y = [p["ja_bits_per_char"] for p in pts]
        err = [
            [(p["ja_bits_per_char"] or 0) - _bound(p, "ci_low") for p in pts],
            [_bound(p, "ci_high") - (p["ja_bits_per_char"] or 0) for p in pts],
        ]
        axes[1].errorbar(x, y, yerr=err, fmt="o-", color=_color(m, i), capsize=3, label=m)
        c = t["chosen"][m]
        spread = (t.get("seed_spread") or {}).get(m)
        if spread:  # the measured noise: the seeds' range of final validation loss at the choice
            axes[0].vlines(c, spread["low"], spread["high"], color=_color(m, i), lw=4, alpha=0.5)
        for ax, ys in ((axes[0], [p["val_loss"] for p in pts]), (axes[1], y)):
            ax.plot([c], [ys[x.index(c)]], "o", ms=12, mfc="none", mec=_color(m, i))
    for ax, label in ((axes[0], "final validation loss (nats/token)"), (axes[1], "held-out ja bits/char")):
        ax.set_xscale("log")
        ax.set_xlabel(t["key"])
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        "learning rate per method (seed 0; circled: chosen; shaded: tie band; bar: the seeds' range at the choice)"
    )
    return _save(fig, path)


def methods_pareto(res: dict, path: Path) -> Path | None:
    """Quality gained (base − method held-out ja bits/char, with its 95% interval) against trainable
    parameters (left, log scale) and against forgetting (right); one point per method, the Pareto
    front joined by a line."""
    sec = res.get("methods")
    if not ok(sec) or not any(r["quality_gain"].get("mean") is not None for r in sec["rows"].values()):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, cost, xlabel in (
        (axes[0], "params_trainable", "trainable parameters"),
        (axes[1], "forgetting", "forgetting (bits/byte lost on en, zh)"),
    ):
        front = []
        for i, (m, r) in enumerate(sorted(sec["rows"].items())):
            g, x = r["quality_gain"], r[cost].get("mean")
            if g.get("mean") is None or x is None:
                continue
            err = [[g["mean"] - g["ci_low"]], [g["ci_high"] - g["mean"]]] if g.get("ci_low") is not None else None
            ax.errorbar([x], [g["mean"]], yerr=err, fmt="o", color=_color(m, i), capsize=3, label=m)
            ax.annotate(m, (x, g["mean"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
            if m in sec["pareto"]["params" if cost == "params_trainable" else "forgetting"]:
                front.append((x, g["mean"]))
        if len(front) > 1:
            ax.plot(*zip(*sorted(front)), color="gray", lw=1, ls="--", label="Pareto front")
        if cost == "params_trainable" and ax.lines:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("quality gained (bits/char vs base)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("methods: quality gained vs cost (95% intervals)")
    return _save(fig, path)


def fertility(res: dict, path: Path) -> Path | None:
    fert = (res.get("base_model") or {}).get("fertility") or {}
    if not fert.get("by_lang"):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    langs, scripts = list(fert["by_lang"]), list(fert["scripts"])
    _bars(
        axes[0],
        langs,
        {"base tokenizer": [fert["by_lang"][g]["chars_per_token"] for g in langs]},
        "characters per token",
    )
    _bars(
        axes[1],
        scripts,
        {"base tokenizer": [fert["scripts"][s]["chars_per_token"] for s in scripts]},
        "characters per token",
    )
    axes[0].set_title("per language (held-out text)")
    axes[1].set_title("per Japanese script")
    return _save(fig, path)


PLOTS = {
    "loss_curves": loss_curves,
    "fertility": fertility,
    "lr_tuning": lr_tuning,
    "learning_vs_forgetting": learning_vs_forgetting,
    "script_accuracy": script_accuracy,
    "rank_sensitivity": rank_sensitivity,
    "lr_sensitivity": lr_sensitivity,
    "precision_comparison": precision_comparison,
    "memory_time": memory_time,
    "predicted_memory": predicted_memory,
    "methods_pareto": methods_pareto,
}


def draw_all(res: dict, plot_dir: Path) -> dict[str, Path]:
    """Every plot whose section exists: {name: path}."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, fn in PLOTS.items():
        p = fn(res, plot_dir / f"{name}.png")
        if p is not None:
            out[name] = p
    return out
