"""Shops' own platforms feeding ulak unchanged: Shopify and WooCommerce webhooks."""
