"""Training convergence per compared configuration: final and best losses, convergence, stability and
held-out Japanese quality (mean ± sd over seeds)."""

from __future__ import annotations

from ja_adapt.report import fmt
from ja_adapt.report.blocks import group_table
from ja_adapt.report.groups import per_group


def build(ctx) -> dict:
    return {
        "training_results": per_group(
            ctx.compared,
            {
                "final_train_loss": lambda g: g.summary("final_train_loss_window_mean"),
                "final_val_loss": lambda g: g.summary("final_val_loss"),
                "best_val_loss": lambda g: g.summary("best_val_loss"),
                "convergence_step": lambda g: g.dyn("convergence_step"),
                "stability_score": lambda g: g.dyn("stability_score"),
                "ja_bits_per_char": lambda g: g.q("ja_bits_per_char"),
                "ja_token_ppl": lambda g: g.q("ja_token_ppl"),
                "steps": lambda g: g.summary("steps"),
            },
        )
    }


def blocks(res: dict, plots: dict) -> list[tuple]:
    return [
        ("h", 4, "Training convergence"),
        group_table(
            res["training_results"],
            [
                ("final train loss (window mean)", "final_train_loss", fmt.num),
                ("final val loss", "final_val_loss", fmt.num),
                ("best val loss", "best_val_loss", fmt.num),
                ("convergence step", "convergence_step", fmt.integer),
                ("stability score", "stability_score", fmt.num),
                ("ja bits/char", "ja_bits_per_char", fmt.num),
                ("ja token ppl", "ja_token_ppl", fmt.num),
            ],
        ),
    ]
