"""Touchline on Slack: Bolt listeners, Block Kit rendering and sending through the Web API."""
