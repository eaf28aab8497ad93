"""Timed jobs of Touchline (pulse runs, reminders, the digest); the scheduler issue fills this in."""
