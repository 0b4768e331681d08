"""The routes: the route table (table.py), declared once, and the handlers it names."""
