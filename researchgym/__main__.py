"""``python -m researchgym``: the command line."""

from researchgym.cli import app

app(prog_name="researchgym")
