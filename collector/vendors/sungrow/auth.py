"""iSolarCloud encrypted calls (layer 1): the RSA/AES scheme, step by step.

From the vendor doc's Appendix 4–7, as research/sungrow.md §3.2 reads them (and
where the notes correct the doc, we follow the notes):

1. A fresh 16-character AES key per request (`new_aes_key`); the key bytes are the
   string's UTF-8, padded with ASCII "0" / cut to 16 (`aes_key_bytes`, the doc's
   `getSecretKey`). A plaintext length other than 16 is E907.
2. That key, RSA-encrypted with the portal's public key, PKCS#1 v1.5 (Java's
   `Cipher.getInstance("RSA")`), in blocks of `modulus bytes − 11`, concatenated, in
   URL-safe base64 without padding (`encodeBase64URLSafeString`) → header
   `x-random-secret-key` (`rsa_encrypt_b64url`). The key material is base64 of an
   X.509 SubjectPublicKeyInfo DER — the doc's comment says "PKCS#8", its code uses
   `X509EncodedKeySpec`, and the notes follow the code (`load_public_key`).
3. `api_key_param = {"nonce": 32 letters/digits, "timestamp": UNIX ms as a string}`
   added to the body (`api_key_param`); the doc's sample uses strings.
4. The whole JSON body AES-128-ECB / PKCS5 (PKCS#7 on 16-byte blocks), no IV,
   UTF-8, as upper-case hex, sent as the raw body (`aes_encrypt_hex`).
5. The reply: upper-case hex of the JSON encrypted with the same key; hex → AES →
   unpad → UTF-8 (`aes_decrypt_hex`). A plain JSON reply is accepted as well
   (`open_reply`; research/sungrow.md §3.2 6.: robust clients do).

Neither the AES key nor anything encrypted with it is ever logged or put in an
exception message.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import string
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

AES_KEY_LENGTH = 16
_ALPHABET = string.ascii_letters + string.digits
_HEX = re.compile(r"[0-9A-Fa-f]+")


class PublicKeyError(ValueError):
    """The configured RSA public key cannot be read (the message never quotes it)."""


class ReplyDecryptError(ValueError):
    """An encrypted reply that does not decrypt to text with our key."""


def new_aes_key() -> str:
    """A fresh 16-character key of letters and digits (the doc's sample: "A123456zA123456z")."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(AES_KEY_LENGTH))


def aes_key_bytes(key: str) -> bytes:
    """The doc's `getSecretKey`: the UTF-8 bytes, padded with b"0" or cut to 16 bytes."""
    raw = key.encode("utf-8")[:AES_KEY_LENGTH]
    return raw + b"0" * (AES_KEY_LENGTH - len(raw))


def aes_encrypt_hex(plaintext: str, key: str) -> str:
    """AES-128-ECB with PKCS5 padding over the UTF-8 text, as upper-case hex (Appendix 5)."""
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext.encode("utf-8")) + padder.finalize()
    enc = Cipher(algorithms.AES(aes_key_bytes(key)), modes.ECB()).encryptor()
    return (enc.update(data) + enc.finalize()).hex().upper()


def aes_decrypt_hex(hex_text: str, key: str) -> str:
    """The reverse (Appendix 6): hex (either case) → AES-128-ECB → unpad → UTF-8 text."""
    text = hex_text.strip()
    try:
        raw = bytes.fromhex(text)
        if not raw or len(raw) % 16:
            raise ValueError("not whole AES blocks")
        dec = Cipher(algorithms.AES(aes_key_bytes(key)), modes.ECB()).decryptor()
        padded = dec.update(raw) + dec.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        data = unpadder.update(padded) + unpadder.finalize()
        return data.decode("utf-8")
    except ValueError:  # bad hex, bad padding, bad UTF-8 (UnicodeDecodeError is one)
        raise ReplyDecryptError(f"an encrypted reply of {len(text)} characters does not decrypt") from None


def open_reply(text: str, key: str) -> str:
    """The reply's JSON text: decrypted when it is hex, as it came otherwise.

    Plain JSON (the gateway answers some errors unencrypted), HTML and empty bodies
    pass through for `codes.unwrap` to classify. Hex that does not decrypt raises
    `ReplyDecryptError`.
    """
    stripped = text.strip()
    if stripped and _HEX.fullmatch(stripped):
        return aes_decrypt_hex(stripped, key)
    return text


def _b64decode_lenient(text: str) -> bytes:
    """Standard or URL-safe alphabet, with or without padding and line breaks (what
    Apache Commons `decodeBase64`, the doc's decoder, accepts)."""
    compact = "".join(text.split()).replace("-", "+").replace("_", "/").rstrip("=")
    compact += "=" * (-len(compact) % 4)
    return base64.b64decode(compact, validate=True)


def load_public_key(text: str) -> RSAPublicKey:
    """The RSA public key as users get it from the developer portal.

    Accepted: base64 of the X.509 SubjectPublicKeyInfo DER (the doc's form, standard or
    URL-safe alphabet, padded or not, wrapped or not), a PEM "PUBLIC KEY" block, and —
    leniently — a PKCS#1 "RSA PUBLIC KEY" PEM or DER.
    """
    stripped = text.strip()
    if not stripped:
        raise PublicKeyError("the RSA public key is empty")
    key: object
    try:
        if stripped.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(stripped.encode("ascii"))
        else:
            der = _b64decode_lenient(stripped)
            try:
                key = serialization.load_der_public_key(der)
            except ValueError:
                # A PKCS#1 RSAPublicKey DER: wrap it as PEM, which cryptography reads.
                body = base64.encodebytes(der).decode("ascii")
                pem = f"-----BEGIN RSA PUBLIC KEY-----\n{body}-----END RSA PUBLIC KEY-----\n"
                key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError) as err:
        raise PublicKeyError(
            "the RSA public key is neither base64 of an X.509 (SubjectPublicKeyInfo) DER key nor a PEM block"
        ) from err
    if not isinstance(key, RSAPublicKey):
        raise PublicKeyError("the public key is not an RSA key")
    return key


def rsa_encrypt_b64url(data: bytes, key: RSAPublicKey) -> str:
    """PKCS#1 v1.5 in blocks of `k − 11` bytes (the doc's `rsaSplitCodec`), concatenated,
    URL-safe base64 without "=" (Apache `encodeBase64URLSafeString`)."""
    block = key.key_size // 8 - 11
    out = b"".join(
        key.encrypt(data[i : i + block], asym_padding.PKCS1v15()) for i in range(0, max(len(data), 1), block)
    )
    return base64.urlsafe_b64encode(out).decode("ascii").rstrip("=")


def new_nonce() -> str:
    """32 letters and digits, new for every request (E909 for a bad one, E910 for a reused one)."""
    return uuid.uuid4().hex


def api_key_param(timestamp_ms: int, nonce: str | None = None) -> dict[str, str]:
    """The body's `api_key_param`: a fresh nonce and the UNIX time in ms, both strings
    as in the doc's sample (Appendix 7)."""
    return {"nonce": nonce or new_nonce(), "timestamp": str(int(timestamp_ms))}


@dataclass(frozen=True)
class SealedRequest:
    """One encrypted request: its extra header, its wire body, and the key for the reply.

    `repr` leaves out the key and the body."""

    secret_key_header: str
    wire_body: str
    aes_key: str

    def __repr__(self) -> str:
        return f"SealedRequest(<{len(self.wire_body)} hex characters>)"

    def open(self, reply: str) -> str:
        """The reply's JSON text (see `open_reply`)."""
        return open_reply(reply, self.aes_key)


def seal(
    body: Mapping[str, Any], public_key: RSAPublicKey, timestamp_ms: int, *, aes_key: str | None = None
) -> SealedRequest:
    """Encrypt one request body: a fresh AES key (unless given, for tests), the body with
    `api_key_param`, AES → upper-case hex, and the RSA-encrypted key for the header."""
    key = aes_key if aes_key is not None else new_aes_key()
    full = {**body, "api_key_param": api_key_param(timestamp_ms)}
    text = json.dumps(full, ensure_ascii=False, separators=(",", ":"))
    return SealedRequest(
        secret_key_header=rsa_encrypt_b64url(key.encode("utf-8"), public_key),
        wire_body=aes_encrypt_hex(text, key),
        aes_key=key,
    )
