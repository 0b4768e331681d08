"""Discovering where personal data lives: schema walking and column classification."""

# Rows read per table to classify its columns; here, not in schema.py, so that `datapolicy
# discover --help` shows it without loading SQLAlchemy (cli/__init__.py).
DEFAULT_SAMPLE_ROWS = 1000
