"""The web page: the dashboard, sign-in by one-time link, and `/try` on this machine."""
