"""The process that faces the chat platforms (and the console)."""
