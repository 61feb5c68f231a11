"""ja-adapt: adapt a causal language model to Japanese with LoRA and full fine-tuning, side by side."""

import warnings

from ja_adapt.core import bitsandbytes_gate

__version__ = "0.1.0"

# peft imports bitsandbytes, and bitsandbytes reaches for a hub kernel, unless it is hidden first;
# only a quantized method loads it (bitsandbytes_gate.load)
bitsandbytes_gate.hide()

# peft 0.21 reads transformers' deprecated `is_gradient_checkpointing` on every wrap, which warned
# once per run; the property still works, so the warning is noise to a ja-adapt user
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
# peft warns that `ensure_weight_tying` found no tied module to add when trainable token rows
# (lora.train_token_ids, vocab.extend) are asked for on a tied output head, and ties them all the same
warnings.filterwarnings("ignore", message="You have requested `ensure_weight_tying`", category=UserWarning)
