"""SMS gateways: each one speaks its provider's documented HTTP API (httpx) and nothing
else. `base.py` is the interface the SMS channel uses; one module per provider."""
