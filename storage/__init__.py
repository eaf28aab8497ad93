"""Touchline's persistence: tables, units of work, queries and migrations."""
