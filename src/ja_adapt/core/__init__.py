"""Core: what every layer may use and that knows nothing of models or data. Errors with exit code 2
(errors), the one atomic JSON writer (jsonio), hub-name resolution (hub), the ja-adapt cache
(cache), the character-script classes (charclass), the bitsandbytes CPU gate (bitsandbytes_gate),
the one streamed file sha256 (hashing), a model's eval mode for a block (modes) and what a run
records about the code and packages that produced it (provenance)."""
