"""Signed outbound webhooks: ulak's own events POSTed to a store's endpoints."""
