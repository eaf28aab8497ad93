"""A terminal platform for trying Touchline with no workspace at all."""
