"""Full fine-tuning (method=full): no wrapper, every weight trains; it saves the whole model."""

from __future__ import annotations

from ja_adapt.methods.spec import MethodSpec, register

register(
    MethodSpec(
        "full", "full fine-tuning: every weight trains", trains_base=True, artifact="model", adapts_linears=False
    )
)
