"""The `mpc-credit` command line: typer commands only, and the demo."""
