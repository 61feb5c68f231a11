"""Methods: one module per adaptation method, one registry (`spec.SPECS`, name → MethodSpec).

Each module registers its method's `MethodSpec` when imported: the facts config, the plan and the
report read, its config section and rules, its plan arithmetic, its builder (the peft config) and
its training hooks. `ja_adapt.config` composes `ExperimentConfig` from the sections registered
here and runs their rules; `ja_adapt.models.build` wraps a model with the builder and hooks.

Adding a method is one module here plus its name on the import line below, whose order is the
order `--help` and error messages list the methods in.

Torch-free: importing it loads no torch (builders and hooks import torch and peft when called).
"""

# Registration order is the registry's order: --help, messages and config sections follow it.
# isort: off
from ja_adapt.methods import lora, full, dora, rslora, adalora, ia3, prefix, qlora  # noqa: F401  (each registers)

# isort: on
from ja_adapt.methods.spec import (  # noqa: F401  (the registry, for `from ja_adapt.methods import ...`)
    SPECS,
    MethodSpec,
    MethodState,
    Section,
    key_error,
    method_spec,
    options,
    register,
    resolve_targets,
)
