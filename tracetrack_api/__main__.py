"""`python -m tracetrack_api`: the `tracetrack` command (serve, config, db, users, …)."""

from tracetrack_ops.cli import main

main(prog_name="python -m tracetrack_api")
