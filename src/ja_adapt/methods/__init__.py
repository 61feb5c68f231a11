"""Methods: what each adaptation method is (its name, config keys, trainable targets, hooks), as
plain data that config, models and the report read. Torch-free: importing it loads no torch."""
