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
import hashlib
import json
import math
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

from collector.clock import Clock
from collector.errors import VendorDataQualityError
from collector.state import State
from collector.vendors.sungrow.codes import VENDOR, LoginRefusedError

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
                # X.509 SubjectPublicKeyInfo, as the doc's code reads it (X509EncodedKeySpec),
                # though its comment says "PKCS#8" (research/sungrow.md §3.2 2.).
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
    # The English doc's rsaSplitCodec never advances its block counter (no `i++`); the
    # CN-doc's loop is right (research/sungrow.md §3.2 2.). A 16-byte key is one block anyway.
    block = key.key_size // 8 - 11
    out = b"".join(
        key.encrypt(data[i : i + block], asym_padding.PKCS1v15()) for i in range(0, max(len(data), 1), block)
    )
    # encodeBase64URLSafeString drops the padding; the gateway also takes it padded or in
    # the standard alphabet (research/sungrow.md §3.2 2.), we send the doc's form.
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


# -- login ------------------------------------------------------------------------------------

# The English doc's Appendix 7 posts to /v1/userService/login (the app API); its §2.1 and
# the CN-doc say /openapi/login, which is what works for V1 (research/sungrow.md §3.1).
LOGIN_PATH = "/openapi/login"


@dataclass(frozen=True)
class LoginResult:
    """A successful login: the token and the (non-secret) user id."""

    token: str
    user_id: str = ""


#: `login_state` values (vendor doc §2.1.4) → what the user is told.
LOGIN_STATES: dict[str, str] = {
    "-1": "the account does not exist",
    "0": "wrong password",
    "2": "the account is locked after too many wrong passwords",
    "5": "the account is locked by the administrator",
}


def check_login(data: Any, *, endpoint: str = "/openapi/login") -> LoginResult:
    """The token of a login's `result_data`, or `LoginRefusedError`.

    `result_code "1"` alone is not success here: a wrong account answers "1" with
    `login_state "-1"` (research/sungrow.md §3.1, CN-doc "用户登陆 2.2"). Success is
    `login_state "1"` with a token. `err_times`, `remain_times` and `disable_time` are
    quoted (they are not secret); the token never is.
    """
    kw: dict[str, Any] = {"vendor": VENDOR, "endpoint": endpoint}
    if not isinstance(data, dict):
        raise VendorDataQualityError(f"iSolarCloud {endpoint}: result_data is not an object", **kw)
    state = data.get("login_state")
    state_text = str(state).strip() if isinstance(state, str | int) and not isinstance(state, bool) else ""
    token = data.get("token")
    if state_text == "1":
        if not isinstance(token, str) or not token.strip():
            raise VendorDataQualityError(f"iSolarCloud {endpoint}: login_state 1 without a token", **kw)
        user = data.get("user_id")
        return LoginResult(token=token.strip(), user_id=str(user) if user is not None else "")
    meaning = LOGIN_STATES.get(state_text, "unknown login_state")
    details = [
        f"{name} {str(data[name])[:32]}"
        for name in ("err_times", "remain_times", "disable_time")
        if data.get(name) not in (None, "")
    ]
    extra = f"; {', '.join(details)}" if details else ""
    shown = state_text[:8] if state_text else "missing"
    raise LoginRefusedError(
        f"iSolarCloud login refused: login_state {shown} ({meaning}{extra}); "
        "check username and password in the config",
        login_state=state_text,
        code=f"login_state {shown}",
        **kw,
    )


def login_body(appkey: str, username: str, password: str, *, encrypted: bool, lang: str) -> dict[str, str]:
    """The login request body (vendor doc §2.1.3, Appendix 7).

    `login_type "1"` is in the doc's encrypted-call sample only; plain clients omit it
    and succeed (research/sungrow.md §3.1), so it is sent with encrypted calls only.
    `/openapi/login`, not the `/v1/userService/login` of the English Appendix 7: §2.1
    and the CN-doc agree on it (§3.1).
    """
    body = {"appkey": appkey, "user_account": username, "user_password": password, "lang": lang}
    if encrypted:
        body["login_type"] = "1"
    return body


# -- the token, shared through the state database -----------------------------------------------

#: The token's validity is 24 h, reset by every call (vendor doc §1.1, Appendix 8). We
#: keep it a little shorter and renew our copy's expiry at most every `TOKEN_TOUCH`, so
#: a token we think valid always is, unless the gateway revoked it (E00003 then).
TOKEN_TTL = 23 * 3600.0
TOKEN_TOUCH = 3600.0
#: A login lock older than this belongs to a process that died mid-login.
LOGIN_LOCK_TTL = 120.0
#: After a refused login (wrong password, locked account) the same password is not tried
#: again for this long, by any process: each wrong try counts towards the account lock
#: (`login_state` 2, `remain_times`). A changed password in the config is tried at once.
LOGIN_REFUSED_TTL = 6 * 3600.0


def account_id(appkey: str, username: str) -> str:
    """A stable, non-secret name for one appkey + account (a hash: the key names rows)."""
    return hashlib.sha256(f"sungrow\0{appkey}\0{username}".encode()).hexdigest()[:16]


class TokenStore:
    """The token of one appkey + account in the state database, shared by every
    transport and process that uses the same state_dir.

    One login at a time, across processes: a lock row (`kv`, with an expiry) taken in
    a `State.transaction()` (BEGIN IMMEDIATE, so two processes cannot both see it
    free). Whoever gets it re-reads the token first — another process may have logged
    in meanwhile — and only then logs in; the others wait and take the new token.
    A lock whose holder died expires after `LOGIN_LOCK_TTL`.
    """

    def __init__(self, state: State, clock: Clock, account: str) -> None:
        self._state = state
        self._clock = clock
        self._token_key = f"sungrow.token.{account}"
        self._lock_key = f"sungrow.login_lock.{account}"
        self._backoff_key = f"sungrow.login_backoff.{account}"
        self._refused_key = f"sungrow.login_refused.{account}"
        self._account = account
        self._touched: dict[str, float] = {}

    def get(self) -> str | None:
        return self._state.get(self._token_key)

    def put(self, token: str) -> None:
        with self._state.transaction():
            self._state.put(self._token_key, token, ttl=TOKEN_TTL)
        self._touched[token] = self._clock.time()

    def touch(self, token: str) -> None:
        """A call with `token` succeeded: its 24 h started again (written at most hourly)."""
        now = self._clock.time()
        if now - self._touched.get(token, -math.inf) < TOKEN_TOUCH:
            return
        with self._state.transaction():
            if self._state.get(self._token_key) == token:
                self._state.put(self._token_key, token, ttl=TOKEN_TTL)
        self._touched = {token: now}

    def try_lock(self, holder: str) -> bool:
        """Take the login lock (True), or see another holder's (False)."""
        with self._state.transaction():
            current = self._state.get(self._lock_key)
            if current is not None and current != holder:
                return False
            self._state.put(self._lock_key, holder, ttl=LOGIN_LOCK_TTL)
            return True

    def unlock(self, holder: str) -> None:
        with self._state.transaction():
            if self._state.get(self._lock_key) == holder:
                self._state.delete(self._lock_key)

    def backoff_until(self) -> float | None:
        """After E916: no login before this time (set by any process), else None."""
        value = self._state.get(self._backoff_key)
        if value is None:
            return None
        try:
            until = float(value)
        except ValueError:
            return None
        return until if until > self._clock.time() else None

    def back_off(self, until: float) -> None:
        with self._state.transaction():
            self._state.put(self._backoff_key, repr(until), ttl=max(0.0, until - self._clock.time()))

    def _password_mark(self, password: str) -> str:
        return hashlib.sha256(f"{self._account}\0{password}".encode()).hexdigest()[:24]

    def refused_state(self, password: str) -> str | None:
        """The `login_state` a login with this password was refused with lately, else None."""
        value = self._state.get(self._refused_key)
        if value is None:
            return None
        mark, _, state = value.partition(" ")
        return state if mark == self._password_mark(password) else None

    def mark_refused(self, password: str, login_state: str) -> None:
        with self._state.transaction():
            value = f"{self._password_mark(password)} {login_state}"
            self._state.put(self._refused_key, value, ttl=LOGIN_REFUSED_TTL)
