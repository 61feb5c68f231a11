"""The experiment configuration: one dataclass per concern, YAML overrides, `key=value` overrides.

A YAML file holds overrides only; every default lives in the schema with a one-line comment.
- schema.py: the dataclasses; `ExperimentConfig` composes them with the sections the methods own
  (each method's section lives in its module, ja_adapt.methods.<name>).
- overrides.py: reading (YAML, `key=value`, flags) with typed coercion; errors name the key and,
  for a misspelling, the closest valid key.
- validate.py: the cross-field rules, with each method's own rules from its module.
- serialise.py: to_dict, config_hash, config.yaml, diff_keys.
Everything other layers use is importable from `ja_adapt.config` itself.
"""

from ja_adapt.config.overrides import from_dict, load_config, parse_override, read_yaml, with_overrides
from ja_adapt.config.schema import (
    BASE_DTYPES,
    METHOD_SECTIONS,
    PRECISIONS,
    AlpacaConfig,
    BucketConfig,
    DataConfig,
    DownstreamConfig,
    EvalConfig,
    ExperimentConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    VocabConfig,
)
from ja_adapt.config.serialise import config_hash, diff_keys, flatten, save_config, to_dict
from ja_adapt.config.validate import base_dtype_problem, validate, validate_method_keys, validate_vocab
from ja_adapt.methods.adalora import AdaLoraConfig
from ja_adapt.methods.ia3 import Ia3Config
from ja_adapt.methods.lora import INITS, LoraConfig
from ja_adapt.methods.prefix import PrefixConfig
from ja_adapt.methods.qlora import QLORA_CPU_KERNELS, QLoraConfig

__all__ = [
    "BASE_DTYPES",
    "INITS",
    "METHOD_SECTIONS",
    "PRECISIONS",
    "QLORA_CPU_KERNELS",
    "AdaLoraConfig",
    "AlpacaConfig",
    "BucketConfig",
    "DataConfig",
    "DownstreamConfig",
    "EvalConfig",
    "ExperimentConfig",
    "Ia3Config",
    "LoraConfig",
    "ModelConfig",
    "OptimConfig",
    "PrefixConfig",
    "QLoraConfig",
    "TrainConfig",
    "VocabConfig",
    "base_dtype_problem",
    "config_hash",
    "diff_keys",
    "flatten",
    "from_dict",
    "load_config",
    "parse_override",
    "read_yaml",
    "save_config",
    "to_dict",
    "validate",
    "validate_method_keys",
    "validate_vocab",
    "with_overrides",
]
