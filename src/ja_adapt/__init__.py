"""ja-adapt: adapt a causal language model to Japanese with LoRA and full fine-tuning, side by side."""

__version__ = "0.1.0"
