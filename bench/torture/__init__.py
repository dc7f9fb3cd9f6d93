"""The reliability runs: work through real ``ichido`` processes while faults are made on
purpose, then a judge checks that nothing was lost, nothing applied twice, nothing missing.

- ``python -m bench torture``: the pipeline alone (no shop), up to a million events
  (pipeline.py: its plan, sender and judge in pipeline_*.py);
- ``python -m bench shop-torture``: shop orders through the local Stripe (shop*.py).

Both run on a PostgreSQL and a Redis of their own (services.py), share the faults
(chaos.py) and the flags, running and report around their own work (harness.py).
"""
