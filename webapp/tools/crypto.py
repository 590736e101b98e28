"""Secret headers of http tools, encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

The key comes from `settings.ARPO_SECRETS_KEY` (the environment in production). Fernet wants 32
url-safe base64 bytes; hashing the setting gives that from any string an operator chooses.
Decrypted headers exist only in the worker, in memory, for as long as a tool is built and called.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from webapp.core.errors import DomainError


def _fernet() -> Fernet:
    digest = hashlib.sha256(f"arpo-tool-secrets:{settings.ARPO_SECRETS_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_headers(headers: dict[str, str]) -> str:
    """A token for the database; empty string for no headers."""
    if not headers:
        return ""
    return _fernet().encrypt(json.dumps(headers, sort_keys=True).encode()).decode()


def decrypt_headers(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        data = json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken:
        # Never say more: the message may reach a log.
        raise DomainError(
            "The tool's secret headers cannot be decrypted (was ARPO_SECRETS_KEY changed?). Set them again.",
            code="secrets_unreadable",
        ) from None
    return {str(k): str(v) for k, v in data.items()}
