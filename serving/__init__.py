"""Serving: the TF Serving SavedModel export, a protocol-compatible local server, the client."""
