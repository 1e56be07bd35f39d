"""`python -m asrtools.cli.main` runs the `asrtools` command (as the console script does)."""
from asrtools.cli import cli

if __name__ == "__main__":
    cli(prog_name="asrtools")
