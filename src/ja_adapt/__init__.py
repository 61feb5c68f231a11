"""ja-adapt: adapt a causal language model to Japanese with LoRA and full fine-tuning, side by side."""

from ja_adapt import bitsandbytes_gate

__version__ = "0.1.0"

# peft imports bitsandbytes, and bitsandbytes reaches for a hub kernel, unless it is hidden first;
# only a quantized method loads it (bitsandbytes_gate.load)
bitsandbytes_gate.hide()
