"""Returns and exchanges: a customer's request from the returns page, the shop's updates,
the store's return policy."""
