"""`ja-adapt demo`: the embedded end-to-end experiment, offline, on a CPU.

    corpora      real English, Chinese and Japanese text from installed packages (data/corpora.py),
                 written to OUT/data/*.jsonl; the manifest (sources, licences, sizes) to OUT/corpora.json
    tokenizer    byte-level BPE learnt on the mixed corpus (data/tokenizer.py)
    base model   the `micro` Qwen2-architecture preset pretrained by ja-adapt's own `train` (method
                 full) on English + Chinese + a little Japanese; cached under cache_root()/demo/<hash>
    compare      LoRA (q,v, and every linear) vs full fine-tuning (with and without added Japanese
                 tokens) and IA3 on Japanese (experiments.run_compare): each entry's learning rate
                 tuned on seed 0, then the other seeds; the base model evaluated too; the extended-
                 vocabulary and IA3 runs on likelihood metrics only (the methods table)
    sweeps       LoRA rank (as long as the comparison) and a precision probe (time and memory only)
    report       one report over all of them: OUT/report.md, report.html, results.json, plots/

Only the corpora, the base model and the sizes are the demo's own: training, evaluation and the report
are exactly what `ja-adapt compare` / `sweep` / `report` run (configs/demo.yaml reproduces them).

Modules: settings.py (the experiment's constants and DemoSizes), corpora.py (corpus assembly),
base_model.py (pretraining and its cache), run.py (run_demo); its command line is apps/cli/demo.py.
"""

from ja_adapt.apps.demo.base_model import base_config, ensure_base, ensure_base_model
from ja_adapt.apps.demo.corpora import DemoCorpora, build_corpora, sizes_table, write_corpora, write_jsonl
from ja_adapt.apps.demo.run import run_demo
from ja_adapt.apps.demo.settings import (
    ARMS,
    BASE_SOURCES,
    CURVE_SEEDS,
    DEFAULT_OUT,
    DEMO_SETTINGS,
    EVAL_SALT,
    FULL,
    JA_CROSS_SOURCES,
    JA_TRAIN_SOURCES,
    JOBS,
    LIKELIHOOD_ONLY,
    METHOD_GRIDS,
    METHODS,
    QUICK,
    SEEDS,
    SWEEPS,
    TRANSLATION_CATALOGS,
    TRANSLATION_MAX_CHARS,
    TUNE_GRIDS,
    TUNE_KEY,
    VOCAB_EXTEND,
    DemoSizes,
    demo_config,
    sweep_plan,
)

__all__ = [
    "ARMS",
    "BASE_SOURCES",
    "CURVE_SEEDS",
    "DEFAULT_OUT",
    "DEMO_SETTINGS",
    "EVAL_SALT",
    "FULL",
    "JA_CROSS_SOURCES",
    "JA_TRAIN_SOURCES",
    "JOBS",
    "LIKELIHOOD_ONLY",
    "METHOD_GRIDS",
    "METHODS",
    "QUICK",
    "SEEDS",
    "SWEEPS",
    "TRANSLATION_CATALOGS",
    "TRANSLATION_MAX_CHARS",
    "TUNE_GRIDS",
    "TUNE_KEY",
    "VOCAB_EXTEND",
    "DemoCorpora",
    "DemoSizes",
    "base_config",
    "build_corpora",
    "demo_config",
    "ensure_base",
    "ensure_base_model",
    "run_demo",
    "sizes_table",
    "sweep_plan",
    "write_corpora",
    "write_jsonl",
]
