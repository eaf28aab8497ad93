"""What Touchline does, platform-neutral: one module per feature."""
