"""Models: load a causal LM (hub name or local directory through transformers; the demo base by
name), build a method onto it (peft adapters or full fine-tuning), its architecture arithmetic
(parameters, FLOPs per token), precision and quantisation, vocabulary extension, and the memory
plan computed on the meta device."""
