"""Discovering where personal data lives: schema walking and column classification."""
