"""Apps: what a user runs. The `ja-adapt` command line (cli), the embedded demo (demo) and the
benchmarks (bench, bench_workers, bench_report). Nothing below imports from here."""
