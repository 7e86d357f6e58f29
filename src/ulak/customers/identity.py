"""Normalising the ways a shop names a customer: emails and phone numbers."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email


def normalize_email(value: str) -> str | None:
    """A stable form for matching, or None when it is no address.

    The domain is lower-cased (IDNA-aware) by email-validator. The local part is lower-cased
    for ASCII letters only: str.lower() turns a Turkish "İ" into "i" plus a combining dot,
    which would corrupt the address.
    """
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    local, _, domain = checked.normalized.rpartition("@")
    local = "".join(c.lower() if c.isascii() else c for c in local)
    return f"{local}@{domain}"


def normalize_phone(value: str, region: str) -> str | None:
    """E.164, reading numbers without a country code in the store's region."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
