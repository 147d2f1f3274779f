"""`python -m lvlm_atlas COMMAND ...`: the same as the `atlas` command."""
import sys

from lvlm_atlas.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m lvlm_atlas"))
