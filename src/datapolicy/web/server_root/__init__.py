"""What is answered at the server root, before authentication: probes, `/metrics`, the console."""
