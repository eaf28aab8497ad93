"""Touchline on Microsoft Teams, through the Bot Framework: every botbuilder import lives here."""
