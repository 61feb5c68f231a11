"""compare and sweep end to end on a tiny model: runs, evaluations, statistics, report; resumable."""

from __future__ import annotations

import json
import os

import pytest
from tiny_runs import FAST

from ja_adapt.apps import cli
from ja_adapt.apps.cli.experiments import parse_grid
from ja_adapt.config import ExperimentConfig, with_overrides
from ja_adapt.experiments import run_name
from ja_adapt.train.rundir import locked


@pytest.fixture(scope="module")
def compare_out(saved_tiny_model, tmp_path_factory):
    _, model_dir, corpus = saved_tiny_model
    out = tmp_path_factory.mktemp("cmp") / "compare"
    argv = ["compare", "--model", str(model_dir), "--data", str(corpus), "--max-steps", "4", "--out", str(out), *FAST]
    assert cli.main(argv) == 0
    return out, argv


def test_compare_writes_runs_evals_stats_and_a_valid_report(compare_out):
    from ja_adapt.report import validate

    out, _ = compare_out
    manifest = json.loads((out / "experiment.json").read_text())
    assert {r["method"] for r in manifest["runs"]} == {"lora", "full"}
    for r in manifest["runs"]:
        run = out / r["dir"]
        assert (run / "summary.json").is_file() and (run / "eval.json").is_file()
        assert list((run / "checkpoints").glob("step-*/eval.json"))
    assert (out / "base" / "eval.json").is_file() and (out / "stats.json").is_file()
    results = json.loads((out / "results.json").read_text())
    validate(results)
    for section in (
        "training_results",
        "efficiency_metrics",
        "japanese_performance",
        "generalization_results",
        "definitions",
        "environment",
    ):
        assert section in results
    report = (out / "report.md").read_text()
    assert "LoRA" in report and (out / "report.html").stat().st_size > 10_000


def test_rerunning_compare_skips_finished_work(compare_out):
    out, argv = compare_out
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/summary.json")}
    stamps.update({p: p.stat().st_mtime_ns for p in out.glob("runs/*/eval.json")})
    assert cli.main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_compare_into_a_different_experiment_is_refused(compare_out, capsys):
    out, argv = compare_out
    assert cli.main([*argv, "lora.rank=4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "different experiment" in err and len(err.splitlines()) == 1


def test_two_point_sweep(saved_tiny_model, tmp_path):
    """A likelihood-only sweep: each run's final weights get the likelihood metrics (what the rank
    table compares) and nothing generated; its checkpoints are not evaluated."""
    _, model_dir, corpus = saved_tiny_model
    out = tmp_path / "rank"
    assert (
        cli.main(
            [
                "sweep",
                "--model",
                str(model_dir),
                "--data",
                str(corpus),
                "--max-steps",
                "2",
                "--grid",
                "lora.rank=2,4",
                "--likelihood-only",
                "--out",
                str(out),
                *FAST,
                "train.eval_every=1",
                "train.save_every=1",
            ]
        )
        == 0
    )
    for run in (out / "runs").iterdir():
        ev = json.loads((run / "eval.json").read_text())
        assert ev["likelihood"]["by_lang"] and ev["generation"]["n"] == 0 and "downstream" not in ev
        assert len(list((run / "checkpoints").glob("step-*"))) == 2
        assert not list((run / "checkpoints").glob("step-*/eval.json"))
    assert json.loads((out / "experiment.json").read_text())["evaluation"] == "likelihood"
    results = json.loads((out / "results.json").read_text())
    assert results["rank_sensitivity"]["status"] == "ok"
    assert [p["rank"] for p in results["rank_sensitivity"]["points"]] == [2, 4]
    trainable = {
        json.loads((out / "runs" / run_name({"lora.rank": r}, 0) / "summary.json").read_text())["params_trainable"]
        for r in (2, 4)
    }
    assert len(trainable) == 2 and max(trainable) == 2 * min(trainable)  # LoRA size is linear in r


def test_probe_sweep_trains_and_measures_without_evaluating(saved_tiny_model, tmp_path):
    _, model_dir, corpus = saved_tiny_model
    out = tmp_path / "precision"
    assert (
        cli.main(
            [
                "sweep",
                "--model",
                str(model_dir),
                "--data",
                str(corpus),
                "--max-steps",
                "2",
                "--grid",
                "precision=fp32,bf16",
                "--probe",
                "--out",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 2 and all((r / "summary.json").is_file() for r in runs)
    assert not any((r / "eval.json").exists() for r in runs) and not (out / "base").exists()
    results = json.loads((out / "results.json").read_text())
    assert results["precision_comparison"]["status"] == "ok"


def test_parse_grid():
    assert parse_grid(["lora.rank=4,8", "method=lora,full"]) == {"lora.rank": [4, 8], "method": ["lora", "full"]}
    # YAML 1.1 reads 1e-4 (no dot) as a string; the config coerces it to the float the key needs
    grid = parse_grid(["optim.lr=1e-4,3e-4"])
    assert grid == {"optim.lr": ["1e-4", "3e-4"]}
    assert [with_overrides(ExperimentConfig(), {"optim.lr": v}).optim.lr for v in grid["optim.lr"]] == [1e-4, 3e-4]


def test_bad_grid_key_is_one_line_exit_2(saved_tiny_model, tmp_path, capsys):
    _, model_dir, corpus = saved_tiny_model
    code = cli.main(
        [
            "sweep",
            "--model",
            str(model_dir),
            "--data",
            str(corpus),
            "--grid",
            "lora.rnak=2,4",
            "--out",
            str(tmp_path / "x"),
            *FAST,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "lora.rank" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("command", ["compare", "sweep"])
def test_an_out_that_is_a_file_or_in_use_is_one_line_exit_2(saved_tiny_model, tmp_path, capsys, command):
    """`compare --out FILE` once ended in a traceback."""
    _, model_dir, corpus = saved_tiny_model
    file = tmp_path / "file"
    file.write_text("precious")
    grid = ["--grid", "lora.rank=2,4"] if command == "sweep" else []
    argv = [command, "--model", str(model_dir), "--data", str(corpus), *grid, "--max-steps", "2", *FAST]
    code = cli.main([*argv, "--out", str(file)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "is not a directory" in err and len(err.splitlines()) == 1
    assert file.read_text() == "precious"
    busy = tmp_path / "busy"
    with locked(busy):  # another compare / sweep holds it
        code = cli.main([*argv, "--out", str(busy)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"pid {os.getpid()}" in err and len(err.splitlines()) == 1


def test_compare_tunes_the_rate_per_method_then_trains_the_seeds_at_the_choice(saved_tiny_model, tmp_path):
    """--tune: seed-0 runs over each method's grid, the lowest final validation loss wins, the
    other seeds train at the winner; stats pair the winners seed by seed and the shared values."""
    _, model_dir, corpus = saved_tiny_model
    out = tmp_path / "tuned"
    assert (
        cli.main(
            [
                "compare",
                "--model",
                str(model_dir),
                "--data",
                str(corpus),
                "--max-steps",
                "3",
                "--out",
                str(out),
                "--seeds",
                "2",
                "--tune",
                "lora:optim.lr=1e-3,1e-2",
                "--tune",
                "full:optim.lr=1e-4,1e-3",
                "--tune-extend",
                "0",
                "--tune-tolerance",
                "0",
                *FAST,
                "eval.gen_prompts=0",
                "train.save_every=0",
                "--no-report",
            ]
        )
        == 0
    )
    manifest = json.loads((out / "experiment.json").read_text())
    tuning = manifest["tuning"]
    assert tuning["spec"]["grids"] == {"lora": [1e-3, 1e-2], "full": [1e-4, 1e-3]}
    for method, grid in tuning["spec"]["grids"].items():
        losses = {
            lr: json.loads(
                (out / "runs" / run_name({"method": method, "optim.lr": lr}, 0) / "summary.json").read_text()
            )["final_val_loss"]
            for lr in grid
        }
        assert tuning["val_loss"][method] == {str(lr): v for lr, v in losses.items()}
        assert tuning["chosen"][method] == min(losses, key=losses.get)
        assert tuning["at_grid_edge"][method] is True  # a two-point grid: always
        seed1 = out / "runs" / run_name({"method": method, "optim.lr": tuning["chosen"][method]}, 1)
        assert json.loads((seed1 / "summary.json").read_text())["seed"] == 1
    names = {r["name"] for r in manifest["runs"]}
    assert len(names) == 4 + 2  # 2 x 2 tuning runs + 2 seed-1 runs
    pairs = {(p["a"], p["b"]) for p in json.loads((out / "stats.json").read_text())["pairs"]}
    chosen = {m: tuning["chosen"][m] for m in ("lora", "full")}
    for seed in (0, 1):
        a, b = (run_name({"method": m, "optim.lr": chosen[m]}, seed) for m in ("lora", "full"))
        assert (a, b) in pairs or (b, a) in pairs
    shared = (run_name({"method": "lora", "optim.lr": 1e-3}, 0), run_name({"method": "full", "optim.lr": 1e-3}, 0))
    assert shared in pairs or shared[::-1] in pairs
    light = [r for r in manifest["runs"] if r["light"]]
    assert len(light) == 2 and all(
        not json.loads((out / r["dir"] / "eval.json").read_text())["generation"].get("n") for r in light
    )
    assert tuning["limit_reached"] == {"lora": True, "full": True}  # --tune-extend 0: at an edge
    _resume_with_one_more_point(out, model_dir, corpus)


def _resume_with_one_more_point(out, model_dir, corpus):
    """The same comparison again with --tune-extend 1: not refused; each entry's edge choice adds
    the next log-spaced point beyond it, and the runs already trained are not trained again (seed 0
    only: the searched points, not seed 1 at a new choice, which costs the suite time)."""
    summaries = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/summary.json")}
    argv = ["compare", "--model", str(model_dir), "--data", str(corpus), "--max-steps", "3", "--out", str(out)]
    argv += ["--seeds", "1", "--tune", "lora:optim.lr=1e-3,1e-2", "--tune", "full:optim.lr=1e-4,1e-3"]
    argv += ["--tune-extend", "1", "--tune-tolerance", "0", *FAST, "eval.gen_prompts=0", "train.save_every=0"]
    assert cli.main([*argv, "--no-report"]) == 0
    tuning = json.loads((out / "experiment.json").read_text())["tuning"]
    for m, grid in {"lora": [1e-3, 1e-2], "full": [1e-4, 1e-3]}.items():
        (extra,) = tuning["extended"][m]  # a two-point grid's choice is at an edge: one point more
        assert extra in (float(f"{grid[1] * 10:.2g}"), float(f"{grid[0] / 10:.2g}"))
        assert tuning["grid"][m] == sorted([*grid, extra]) and set(tuning["val_loss"][m]) == set(
            map(str, tuning["grid"][m])
        )
        assert tuning["limit_reached"][m] == tuning["at_grid_edge"][m]
        assert tuning["ties"][m] == [tuning["chosen"][m]]
    assert all(p.stat().st_mtime_ns == t for p, t in summaries.items())  # reused, not retrained


def test_tune_flag_errors_name_the_method_and_key(saved_tiny_model, tmp_path, capsys):
    _, model_dir, corpus = saved_tiny_model
    base = ["compare", "--model", str(model_dir), "--data", str(corpus), "--out", str(tmp_path / "x"), *FAST]
    for tune, words in (
        (["prefix:optim.lr=1e-3"], "method 'prefix' is not compared"),
        (["optim.lr=1e-3", "lora.rank=4"], "one tuned key"),
        (["optim.lr=abc"], "optim.lr"),
    ):
        assert cli.main([*base, *[a for t in tune for a in ("--tune", t)]]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1
    for flag in (["--tune-extend", "-1"], ["--tune-tolerance", "-0.1"], ["--tune-tolerance", "nan"]):
        assert cli.main([*base, "--tune", "optim.lr=1e-3,1e-2", *flag]) == 2
        err = capsys.readouterr().err.strip()
        assert flag[0] in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_compare_over_three_methods_tunes_one_and_reports_every_method(saved_tiny_model, tmp_path):
    """lora, full and qlora under one protocol: qlora's rate tuned on seed 0, every method paired
    with every other seed by seed, each against the base; the methods table has a row for each."""
    from ja_adapt.report import build_results

    _, model_dir, corpus = saved_tiny_model
    out = tmp_path / "methods"
    assert (
        cli.main(
            [
                "compare",
                "--model",
                str(model_dir),
                "--data",
                str(corpus),
                "--max-steps",
                "2",
                "--out",
                str(out),
                "--methods",
                "lora,full,qlora",
                "--tune",
                "qlora:optim.lr=1e-3,3e-3",
                *FAST,
                "eval.gen_prompts=0",
                "train.save_every=0",
                "train.eval_every=0",
                "eval.bootstrap_resamples=20",
                "--no-report",
            ]
        )
        == 0
    )
    manifest = json.loads((out / "experiment.json").read_text())
    chosen = manifest["tuning"]["chosen"]["qlora"]
    headline = {
        "lora": run_name({"method": "lora"}, 0),
        "full": run_name({"method": "full"}, 0),
        "qlora": run_name({"method": "qlora", "optim.lr": chosen}, 0),
    }
    stats = json.loads((out / "stats.json").read_text())
    pairs = {frozenset((p["a"], p["b"])) for p in stats["pairs"]}
    for a, b in (("lora", "full"), ("qlora", "full"), ("qlora", "lora")):
        assert frozenset((headline[a], headline[b])) in pairs
    assert {p["a"] for p in stats["vs_base"]} == set(headline.values())
    results = build_results([out])  # the rendering: tests/unit/report/test_report.py
    rows = results["methods"]["rows"]
    assert set(rows) == {"lora", "full", "qlora"}
    assert rows["qlora"]["params_trainable"]["mean"] == rows["lora"]["params_trainable"]["mean"]
    plan = json.loads((out / "plan.json").read_text())
    assert plan[headline["qlora"]]["bytes"]["weights"] < plan[headline["lora"]]["bytes"]["weights"]
    assert rows["qlora"]["quality_gain"]["n"] == 1 and rows["qlora"]["ja_bits_per_char"]["mean"] > 0


def test_parallel_likelihood_only_compare_gives_the_serial_numbers_and_reuses_runs(
    saved_tiny_model, tmp_path, one_thread
):
    """--jobs 2 trains and evaluates on two worker processes with the numbers of --jobs 1;
    --likelihood-only evaluates every run for the methods table only; --reuse-from copies finished
    runs of the same configuration instead of training them again."""
    _, model_dir, corpus = saved_tiny_model
    common = [
        "--model",
        str(model_dir),
        "--data",
        str(corpus),
        "--max-steps",
        "2",
        "--seeds",
        "2",
        "--likelihood-only",
        "--no-report",
        *FAST,
        "train.save_every=0",
        "eval.bootstrap_resamples=20",
    ]
    serial, parallel, more = tmp_path / "serial", tmp_path / "parallel", tmp_path / "more"
    tune = ["--tune", "ia3:optim.lr=1e-2,1e-1", "--tune-extend", "0"]  # the grid as given
    assert cli.main(["compare", "--methods", "lora,ia3", *tune, "--out", str(serial), *common]) == 0
    assert cli.main(["compare", "--methods", "lora,ia3", *tune, "--out", str(parallel), "--jobs", "2", *common]) == 0
    a, b = (json.loads((d / "experiment.json").read_text()) for d in (serial, parallel))
    assert (a["jobs"], b["jobs"], a["evaluation"]) == (1, 2, {"lora": "likelihood", "ia3": "likelihood"})
    assert a["tuning"] == b["tuning"] and [r["name"] for r in a["runs"]] == [r["name"] for r in b["runs"]]
    assert len(a["runs"]) == 2 + 2 + 1  # lora x 2 seeds, ia3: 2 grid points + seed 1
    for r in a["runs"]:
        ea, eb = (json.loads((d / r["dir"] / "eval.json").read_text()) for d in (serial, parallel))
        assert ea["likelihood"]["by_lang"] == eb["likelihood"]["by_lang"] and not ea["generation"].get("n")
        la, lb = ((d / r["dir"] / "metrics.jsonl").read_text().splitlines() for d in (serial, parallel))
        assert [json.loads(x).get("loss") for x in la] == [json.loads(x).get("loss") for x in lb]
        assert json.loads((parallel / r["dir"] / "summary.json").read_text())["device"]["torch_threads"] == 1
    chosen = {r["name"] for r in b["runs"] if r["chosen"]}
    assert {p["a"] for p in json.loads((parallel / "stats.json").read_text())["vs_base"]} == chosen
    assert (
        cli.main(
            [
                "compare",
                "--methods",
                "lora,full,ia3",
                *tune,
                "--out",
                str(more),
                "--jobs",
                "2",
                "--reuse-from",
                str(serial),
                *common,
            ]
        )
        == 0
    )
    for r in a["runs"]:  # copied, not retrained: the same bytes
        assert (more / r["dir"] / "metrics.jsonl").read_bytes() == (serial / r["dir"] / "metrics.jsonl").read_bytes()
    assert (more / "runs" / run_name({"method": "full"}, 1) / "summary.json").is_file()


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--jobs", "0"], "--jobs must be positive"),
        (["--reuse-from", "nowhere"], "--reuse-from nowhere: not an experiment"),
        (["--likelihood-only", "ia3"], "--likelihood-only ia3: not compared"),
        (["--curve-seeds", "0"], "--curve-seeds must be positive"),
    ],
)
def test_bad_jobs_or_reuse_dir_is_one_line_exit_2(saved_tiny_model, tmp_path, capsys, flags, words):
    _, model_dir, corpus = saved_tiny_model
    out = tmp_path / "x"
    assert (
        cli.main(["compare", "--model", str(model_dir), "--data", str(corpus), "--out", str(out), *FAST, *flags]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and not out.exists()


# ---- arms: two configurations of one method compared like two methods ----------------------------

ARMS = ["--methods", "lora,lora-all,full", "--arm", "lora-all:method=lora", "--arm", "lora-all:lora.targets=all-linear"]


def test_parse_arms_accumulates_overrides_per_name():
    from ja_adapt.apps.cli.experiments import parse_arms
    from ja_adapt.experiments import compared_entries

    arms = parse_arms(["lora-all:method=lora", "r8:lora.rank=8", "lora-all:lora.targets=all-linear"])
    assert arms == {"lora-all": {"method": "lora", "lora.targets": "all-linear"}, "r8": {"lora.rank": 8}}
    # an arm named after a registered method is that method, modified; --methods order is kept
    entries = compared_entries(
        ExperimentConfig(), ["full", "lora-all", "r8"], {**arms, "r8": {"method": "dora", "lora.rank": 8}}
    )
    assert list(entries) == ["full", "lora-all", "r8"] and entries["r8"] == {"method": "dora", "lora.rank": 8}
    # stored as the config types it (YAML 1.1 reads 1e-3 as a string), sections key by key
    assert compared_entries(ExperimentConfig(), ["lora"], {"lora": {"optim.lr": "1e-3", "lora": {"rank": 8}}}) == {
        "lora": {"method": "lora", "optim.lr": 1e-3, "lora.rank": 8}
    }


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--methods", "lora,full", "--arm", "x:method=lora"], "--arm x: not compared; add 'x' to --methods"),
        (["--methods", "lora,x"], "--methods x: not a registered method"),
        (["--methods", "lora,x", "--arm", "x:lora.rank=4"], "--arm x: not a registered method"),
        (
            ["--methods", "lora,x", "--arm", "x:method=lora", "--arm", "x:lora.rnak=4"],
            "--arm x: unknown key 'lora.rnak'",
        ),
        (["--methods", "lora,x", "--arm", "x:method=lora", "--arm", "x:lora.rank=abc"], "--arm x: key 'lora.rank'"),
        (["--methods", "lora,x", "--arm", "x:method=nope"], "--arm x: config: key 'method' is 'nope'"),
        (
            [
                "--methods",
                "lora,x",
                "--arm",
                "x:method=lora",
                "--arm",
                "x:optim.lr=1e-3",
                "--tune",
                "optim.lr=1e-3,1e-2",
            ],
            "--arm x:optim.lr=...: optim.lr is the tuned key; give the arm its own grid with --tune x:optim.lr=",
        ),
        (
            ["--methods", "lora,x", "--arm", "x:method=lora", "--arm", "x:seed=3"],
            "--arm x:seed=...: seed is the whole comparison's",
        ),
        (["--methods", "lora,x", "--arm", "x:method=lora"], "--arm x: the same configuration as 'lora'"),
        (["--methods", "lora,x", "--arm", "x:method=lora", "--arm", "x:method=full"], "arm 'x' already sets method"),
        (["--arm", "lora.rank=4"], "--arm lora.rank=4: expected NAME:KEY=VALUE"),
    ],
)
def test_bad_arm_is_one_line_exit_2(saved_tiny_model, tmp_path, capsys, flags, words):
    _, model_dir, corpus = saved_tiny_model
    out = tmp_path / "x"
    assert (
        cli.main(["compare", "--model", str(model_dir), "--data", str(corpus), "--out", str(out), *FAST, *flags]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and not out.exists()


def test_compare_arms_lora_on_qv_and_on_every_linear_beside_full(saved_tiny_model, tmp_path):
    """LoRA on q,v (the reference), LoRA on all seven linears (an arm) and full fine-tuning, each at
    its own rate from its own grid: trainable parameters as method_spec counts them, a methods-table
    row per arm, a headline that names its LoRA, a variant headline for the other, both gaps stated."""
    import re

    from ja_adapt.methods.spec import SPECS, options
    from ja_adapt.models.arch import architecture

    _, model_dir, corpus = saved_tiny_model
    out = tmp_path / "arms"
    grids = {"lora": [1e-3, 1e-2], "lora-all": [3e-3, 3e-2], "full": [1e-4, 1e-3]}
    tune = [a for m, g in grids.items() for a in ("--tune", f"{m}:optim.lr={g[0]},{g[1]}")]
    tune += ["--tune-extend", "0", "--tune-tolerance", "0"]  # the grids as given, the lowest loss
    assert (
        cli.main(
            [
                "compare",
                "--model",
                str(model_dir),
                "--data",
                str(corpus),
                "--max-steps",
                "2",
                *ARMS,
                *tune,
                "--likelihood-only",
                "--out",
                str(out),
                *FAST,
                "train.save_every=0",
                "train.eval_every=0",
                "eval.bootstrap_resamples=20",
                "data.test_fraction=0.1",
                "eval.stride=60",
                "eval.batch_size=16",
            ]
        )
        == 0
    )  # 7 evaluations: small ones
    manifest = json.loads((out / "experiment.json").read_text())
    entries = {
        "lora": {"method": "lora"},
        "lora-all": {"method": "lora", "lora.targets": "all-linear"},
        "full": {"method": "full"},
    }
    assert manifest["arms"] == {"lora-all": entries["lora-all"]}
    assert {r["arm"] for r in manifest["runs"]} == set(entries) and len(manifest["runs"]) == 6
    tuning, summary = manifest["tuning"], {}
    for arm, grid in grids.items():  # each arm its own rate, from its own grid
        runs = {lr: out / "runs" / run_name({**entries[arm], "optim.lr": lr}, 0) for lr in grid}
        losses = {lr: json.loads((d / "summary.json").read_text())["final_val_loss"] for lr, d in runs.items()}
        assert tuning["chosen"][arm] == min(losses, key=losses.get) and tuning["spec"]["grids"][arm] == grid
        summary[arm] = json.loads((runs[tuning["chosen"][arm]] / "summary.json").read_text())
    arch = architecture(json.loads((model_dir / "config.json").read_text()))
    predicted = {
        t: SPECS["lora"].trainable(arch, options(with_overrides(ExperimentConfig(), {"lora.targets": t})))
        for t in ("qv", "all-linear")
    }
    qv, every = summary["lora"]["params_trainable"], summary["lora-all"]["params_trainable"]
    assert (qv, every - qv) == (predicted["qv"], predicted["all-linear"] - predicted["qv"]) and every > 2 * qv
    chosen = {a: run_name({**entries[a], "optim.lr": tuning["chosen"][a]}, 0) for a in entries}
    pairs = {frozenset((p["a"], p["b"])) for p in json.loads((out / "stats.json").read_text())["pairs"]}
    assert frozenset((chosen["lora"], chosen["lora-all"])) in pairs  # two arms of one method: a pair

    results = json.loads((out / "results.json").read_text())
    rows = results["methods"]["rows"]
    assert set(rows) == set(entries) and rows["lora-all"]["method"] == "lora"
    assert rows["lora-all"]["params_trainable"]["mean"] == every and rows["lora"]["params_trainable"]["mean"] == qv
    for arm in entries:
        assert results["groups"][rows[arm]["group"]]["runs"] == [chosen[arm]]  # the chosen point, not a loser
        ev = json.loads((out / "runs" / chosen[arm] / "eval.json").read_text())
        assert rows[arm]["chars_per_token"]["mean"] == ev["fertility"]["by_lang"]["ja"]["chars_per_token"] > 0
        assert rows[arm]["chars_per_s"]["mean"] == summary[arm].get("chars_per_s")  # None before summary.json has it
    head, variants = results["headline"], results["headline_variants"]
    assert head["methods"]["lora"].items() >= {"arm": "lora", "targets": "qv", "rank": 16}.items()
    assert set(variants) == {"lora-all"}
    var = variants["lora-all"]
    assert var["methods"]["lora"].items() >= {"arm": "lora-all", "targets": "all-linear", "rank": 16}.items()
    assert var["metrics"]["params_trainable"]["lora"]["mean"] == every
    assert var["metrics"]["params_trainable"]["full"] == head["metrics"]["params_trainable"]["full"]
    assert set(results["lr_tuning"]["chosen"]) == set(entries)
    md = (out / "report.md").read_text(encoding="utf-8")
    for name in ("LoRA (q,v, r=16)", "LoRA (all-linear, r=16)"):
        assert re.search(re.escape(name) + r" at lr [^;]* vs full: ", md), name
