"""The preference centre: topics per channel, the customer's page, and KVKK/GDPR requests
made from it."""
