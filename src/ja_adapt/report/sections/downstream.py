"""The report's downstream section: lm-eval tasks, read from stats.json only.

stats.json's `downstream` records (evaluate/downstream_stats.py, one per compared pair of models)
hold each model's accuracy with its item-bootstrap interval, the paired McNemar test and the Holm
adjustment over the tasks of that pair. This module picks the compared models (the base model and
the compared LoRA and full runs), lays out one row per task and model and one row per paired test,
and formats them (docs/metrics.md#downstream).
"""

from __future__ import annotations

from ja_adapt.report import fmt
from ja_adapt.report.status import NOT_RUN, not_run, ok


def build(ctx) -> dict:
    return {"downstream": downstream_section(ctx.exps, *ctx.cmp.groups)}


def downstream_section(exps, *groups) -> dict:
    """results.json `downstream`: rows (task × model) and tests (pairs of models) from stats.json, for
    the runs of the compared groups and the base."""
    models = {**{r.name: g.label for g in groups for r in g.runs}, "base": "base"}
    tasks, rows, tests, versions = {}, {}, [], set()
    for entry, ds in _compared_pairs(exps, models):
        versions.add(ds.get("lm_eval_version"))
        family = ds.get("family") or {}
        for task, t in sorted(ds["tasks"].items()):
            if "skipped" in t or not t.get("main_metric"):
                continue
            tasks.setdefault(task, {k: t.get(k) for k in ("version", "num_fewshot", "config_sha256", "n")})
            for side in ("a", "b"):
                rows[(task, entry[side])] = {
                    "task": task,
                    "model": entry[side],
                    "group": models[entry[side]],
                    **{m: rec[side] for m, rec in t["metrics"].items()},
                }
            tests.append(_test(task, t, entry, family))
    if not rows:
        return not_run()
    order = {name: i for i, name in enumerate(models)}
    return {
        "status": "ok",
        "definition": "docs/metrics.md#downstream",
        "engine": "lm-evaluation-harness",
        "lm_eval_versions": sorted(v for v in versions if v),
        "tasks": tasks,
        "rows": sorted(rows.values(), key=lambda r: (r["task"], r["group"] != "base", r["group"], order[r["model"]])),
        "tests": tests,
        "direction": "diff = a - b (accuracy)",
    }


def _compared_pairs(exps, models: dict):
    """(stats.json pair or vs_base entry, its downstream record) for each pair of `models` that ran
    lm-eval tasks, once: a pair in several experiments' stats (runs reused) yields its first."""
    seen = set()
    for e in exps:
        for kind in ("pairs", "vs_base"):
            for entry in (e.stats or {}).get(kind, []):
                ds = entry["stats"].get("downstream")
                pair = frozenset((entry["a"], entry["b"]))
                if not ds or entry["a"] not in models or entry["b"] not in models or pair in seen:
                    continue
                seen.add(pair)
                yield entry, ds


def _test(task: str, t: dict, entry: dict, family: dict) -> dict:
    """One paired test of a task's main metric: the difference a − b with its interval, McNemar's
    test and the Holm-adjusted p of the pair's family."""
    main = t["main_metric"]
    m = t["metrics"][main]
    name = f"{task} {main} (McNemar exact)"
    return {
        "task": task,
        "metric": main,
        "a": entry["a"],
        "b": entry["b"],
        "seed": entry.get("seed"),
        "diff": m["diff"],
        "diff_ci_low": m.get("diff_ci_low"),
        "diff_ci_high": m.get("diff_ci_high"),
        **_mcnemar(m["mcnemar"]),
        "p_holm": (family.get("p_holm") or {}).get(name),
        "holm_family_size": family.get("tests"),
    }


def _mcnemar(t: dict) -> dict:
    out = {"a_only": t["a_only"], "b_only": t["b_only"], "n_discordant": t["n_discordant"], "p": t.get("p")}
    if t.get("underpowered"):
        out["underpowered"] = (
            f"underpowered ({t['n_discordant']} discordant items, min attainable p = {t['min_attainable_p']:.3g})"
        )
    return out


def _acc(rec: dict | None) -> str:
    if not rec or rec.get("accuracy") is None:
        return "-"
    return f"{fmt.num(rec['accuracy'], 3)} [{fmt.num(rec.get('ci_low'), 3)}, {fmt.num(rec.get('ci_high'), 3)}]"


def blocks(res: dict, plots: dict) -> list[tuple]:
    """The report's downstream section (blocks for render.py): the tasks, each model's accuracy, then
    the paired tests."""
    d = res.get("downstream") or NOT_RUN
    if not ok(d):
        return [("p", "Not run: no compared model ran lm-eval tasks (eval.downstream.tasks).")]
    return [
        (
            "p",
            f"Tasks run by lm-evaluation-harness {', '.join(d['lm_eval_versions'])} on the loaded models "
            "(log-likelihood scoring as lm-eval defines acc and acc_norm). Intervals: 95% percentile "
            "bootstrap over items; one row per task and model (base, and each seed of the compared "
            "LoRA and full configurations).",
        ),
        _tasks_table(d["tasks"]),
        (
            "table",
            ["task", "model", "configuration", "acc [95% CI]", "acc_norm [95% CI]"],
            [[r["task"], r["model"], r["group"], _acc(r.get("acc")), _acc(r.get("acc_norm"))] for r in d["rows"]],
        ),
        (
            "p",
            "Paired tests on the same items (a vs b, diff = a − b in accuracy, with its paired "
            "item-bootstrap 95% interval): McNemar's exact test on the discordant items; Holm over "
            "the tasks of each pair. An underpowered test (too few discordant items to reach p < 0.05) "
            "is not run and is no member of the family.",
        ),
        _tests_table(d["tests"]),
    ]


def _tasks_table(tasks: dict) -> tuple:
    """Which version of each task ran, with how many shots and items (config hash shortened)."""
    return (
        "table",
        ["task", "version", "shots", "items", "config sha256"],
        [
            [
                t,
                fmt.num(m["version"], 1) if isinstance(m["version"], (int, float)) else str(m["version"]),
                fmt.integer(m["num_fewshot"]),
                fmt.integer(m["n"]),
                str(m["config_sha256"])[:12],
            ]
            for t, m in sorted(tasks.items())
        ],
    )


def _tests_table(tests: list[dict]) -> tuple:
    """One row per paired test: the difference, the discordant counts and the p-values (an
    underpowered test shows why instead of its p)."""
    return (
        "table",
        ["task", "a", "b", "diff [95% CI]", "a only / b only", "p", "p (Holm)"],
        [
            [
                t["task"],
                t["a"],
                t["b"],
                f"{fmt.num(t['diff'], 3)} [{fmt.num(t['diff_ci_low'], 3)}, {fmt.num(t['diff_ci_high'], 3)}]",
                f"{t['a_only']} / {t['b_only']}",
                t.get("underpowered") or fmt.num(t["p"], 4),
                fmt.num(t["p_holm"], 4) if t.get("p_holm") is not None else "-",
            ]
            for t in tests
        ],
    )
