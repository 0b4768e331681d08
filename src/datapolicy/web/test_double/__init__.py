"""What exists only for clients' tests: `serve --scenarios` and `serve --profile graph`."""
