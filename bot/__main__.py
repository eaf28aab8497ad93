"""`python -m bot` is the `touchline` command."""

from bot.cli import main

main()
