"""ichido's benchmarks and reliability runs: ``python -m bench NAME [--quick] [--json]``."""
