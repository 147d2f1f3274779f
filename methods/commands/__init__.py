"""One module per `python -m methods` command."""
