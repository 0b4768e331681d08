"""The request pipeline (pipeline.py) and the cross-cutting steps it runs for every request."""
