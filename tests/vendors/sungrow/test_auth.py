"""The encryption of research/sungrow.md §3.2: known-answer AES vectors, RSA round trips, key forms."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from collector.clock import FakeClock
from collector.state import State
from collector.vendors.sungrow.auth import (
    LOGIN_LOCK_TTL,
    TOKEN_TOUCH,
    TOKEN_TTL,
    PublicKeyError,
    ReplyDecryptError,
    TokenStore,
    account_id,
    aes_decrypt_hex,
    aes_encrypt_hex,
    aes_key_bytes,
    api_key_param,
    load_public_key,
    login_body,
    new_aes_key,
    new_nonce,
    open_reply,
    rsa_encrypt_b64url,
    seal,
)

DOC_KEY = "A123456zA123456z"  # the doc's sample key (Appendix 7)

# Known answers computed outside the code under test with the OpenSSL command line:
#   printf '%s' "$PLAIN" | openssl enc -aes-128-ecb -K "$(printf '%s' "$KEY" | xxd -p)" | xxd -p -u
# (openssl pads PKCS#7, which is PKCS5Padding on 16-byte blocks; ECB has no IV).
VECTORS: list[tuple[str, str, str]] = [
    (
        DOC_KEY,
        '{"appkey":"test","lang":"_en_US"}',
        "0035F1D529E02C21FFFB448A4075670C475FBF888987E02B7EB9CA488C7F40125D12A6DB1E8CD8B673CFD28190EE708F",
    ),
    (DOC_KEY, "", "E34EBCFE9DF065E96699B535BACCBB3C"),  # one block of padding
    (DOC_KEY, "0123456789abcdef", "5DC5777971C3F37ED00892FA4ECD3F36E34EBCFE9DF065E96699B535BACCBB3C"),
    # "short" is padded with ASCII "0" to 16 bytes (getSecretKey): the key is "short00000000000".
    ("short", "hello", "5A189F61F6938388E8293C2B99B68D7D"),
    (
        DOC_KEY,
        '{"result_code":"1","result_msg":"success","result_data":{"a":"é"}}',
        "E41AB0CBDCB596ADE620D17BD51584F3E115715B935E498CF4FC5C995654C1F7"
        "25C0A12C974D34F6B55D3C1FAA97814CB19BCDF08C35D8750731CEEDC6455702785F5FE22C1C6DE4A7A02FA5EC34242C",
    ),
]


@pytest.fixture(scope="module")
def pair() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def spki_der(priv: rsa.RSAPrivateKey) -> bytes:
    return priv.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def minimal_aes_ecb_decrypt(hex_text: str, key16: bytes) -> str:
    """An independent reading of Appendix 6: block by block, padding stripped by hand."""
    raw = bytes.fromhex(hex_text)
    out = b""
    for i in range(0, len(raw), 16):
        dec = Cipher(algorithms.AES(key16), modes.ECB()).decryptor()
        out += dec.update(raw[i : i + 16]) + dec.finalize()
    assert 1 <= out[-1] <= 16 and out.endswith(bytes([out[-1]]) * out[-1])
    return out[: -out[-1]].decode("utf-8")


@pytest.mark.parametrize(("key", "plain", "hex_"), VECTORS)
def test_aes_known_answers(key: str, plain: str, hex_: str) -> None:
    assert aes_encrypt_hex(plain, key) == hex_  # upper-case hex
    assert aes_decrypt_hex(hex_, key) == plain
    assert aes_decrypt_hex(hex_.lower(), key) == plain  # either case is read back


def test_key_bytes_follow_get_secret_key() -> None:
    assert aes_key_bytes(DOC_KEY) == DOC_KEY.encode()
    assert aes_key_bytes("short") == b"short00000000000"
    assert aes_key_bytes(DOC_KEY + "EXTRA") == DOC_KEY.encode()  # cut to 16 bytes
    assert aes_encrypt_hex("x", DOC_KEY + "EXTRA") == aes_encrypt_hex("x", DOC_KEY)


def test_fresh_keys_and_nonces() -> None:
    keys = {new_aes_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(len(k) == 16 and re.fullmatch(r"[A-Za-z0-9]{16}", k) for k in keys)
    nonces = {new_nonce() for _ in range(50)}
    assert len(nonces) == 50 and all(re.fullmatch(r"[a-z0-9]{32}", n) for n in nonces)
    param = api_key_param(1616725497384, "cb360459bd624c6ab15308c4b6847856")
    assert param == {"nonce": "cb360459bd624c6ab15308c4b6847856", "timestamp": "1616725497384"}


def test_replies_that_do_not_decrypt() -> None:
    for bad in ("ABC", "E34EBCFE9DF065E96699B535BACCBB", "00" * 16, "ZZ" * 16):
        with pytest.raises(ReplyDecryptError) as info:
            aes_decrypt_hex(bad, DOC_KEY)
        assert DOC_KEY not in str(info.value)
    with pytest.raises(ReplyDecryptError):
        open_reply(VECTORS[0][2], "another-key-1234")  # wrong key: bad padding (or bad UTF-8)


def test_open_reply_accepts_plain_json_html_and_empty() -> None:
    plain = '{"result_code":"E00003","result_data":null}'
    assert open_reply(plain, DOC_KEY) == plain
    assert open_reply("<html>502</html>", DOC_KEY) == "<html>502</html>"
    assert open_reply("", DOC_KEY) == ""
    assert open_reply(" " + VECTORS[4][2] + "\n", DOC_KEY) == VECTORS[4][1]


def test_rsa_round_trip_one_block_url_safe_without_padding(pair: rsa.RSAPrivateKey) -> None:
    key = load_public_key(base64.b64encode(spki_der(pair)).decode())
    for _ in range(20):  # enough draws that a "+", "/" or "=" would show up in a wrong alphabet
        header = rsa_encrypt_b64url(DOC_KEY.encode(), key)
        assert re.fullmatch(r"[A-Za-z0-9_-]+", header)
        raw = b64url_decode(header)
        assert len(raw) == 128  # a 1024-bit key: one block
        assert pair.decrypt(raw, asym_padding.PKCS1v15()) == DOC_KEY.encode()


def test_rsa_splits_long_data_into_blocks(pair: rsa.RSAPrivateKey) -> None:
    # rsaSplitCodec: blocks of 128 - 11 = 117 bytes, concatenated.
    key = load_public_key(base64.b64encode(spki_der(pair)).decode())
    data = bytes(range(200))
    raw = b64url_decode(rsa_encrypt_b64url(data, key))
    assert len(raw) == 256
    parts = [pair.decrypt(raw[i : i + 128], asym_padding.PKCS1v15()) for i in (0, 128)]
    assert parts[0] == data[:117] and parts[1] == data[117:]


def test_public_key_forms_users_get(pair: rsa.RSAPrivateKey) -> None:
    der = spki_der(pair)
    std = base64.b64encode(der).decode()
    pkcs1_der = pair.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    forms = [
        std,
        std.rstrip("="),
        base64.urlsafe_b64encode(der).decode(),
        base64.urlsafe_b64encode(der).decode().rstrip("="),
        "\n".join(std[i : i + 64] for i in range(0, len(std), 64)) + "\n",
        "  " + std + "  ",
        pair.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        pair.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode(),
        base64.b64encode(pkcs1_der).decode(),
    ]
    want = pair.public_key().public_numbers()
    for form in forms:
        assert load_public_key(form).public_numbers() == want


def test_bad_public_keys_are_named_not_quoted() -> None:
    junk = base64.b64encode(b"x" * 40).decode()
    for bad in ("", "   ", "not base64 at all!", junk, "-----BEGIN PUBLIC KEY-----"):
        with pytest.raises(PublicKeyError) as info:
            load_public_key(bad)
        assert bad.strip() == "" or bad not in str(info.value)
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(PublicKeyError, match="not an RSA key"):
        load_public_key(ec_pem)


def test_seal_builds_the_documented_request(pair: rsa.RSAPrivateKey) -> None:
    key = load_public_key(base64.b64encode(spki_der(pair)).decode())
    body = {"appkey": "APPKEY", "token": "1_abc", "lang": "_en_US", "ps_id": "12345"}
    sealed = seal(body, key, 1616725497384)
    aes_key = pair.decrypt(b64url_decode(sealed.secret_key_header), asym_padding.PKCS1v15()).decode()
    assert aes_key == sealed.aes_key and len(aes_key) == 16
    assert re.fullmatch(r"[0-9A-F]+", sealed.wire_body)
    sent = json.loads(minimal_aes_ecb_decrypt(sealed.wire_body, aes_key.encode()))
    assert {k: sent[k] for k in body} == body
    assert sent["api_key_param"]["timestamp"] == "1616725497384"
    assert re.fullmatch(r"[A-Za-z0-9]{32}", sent["api_key_param"]["nonce"])
    # The reply comes back under the same key.
    reply = aes_encrypt_hex('{"result_code":"1","result_data":{"x":1}}', aes_key)
    assert json.loads(sealed.open(reply)) == {"result_code": "1", "result_data": {"x": 1}}
    # Nothing secret in its repr; a new seal has a new key and nonce.
    assert aes_key not in repr(sealed) and "1_abc" not in repr(sealed)
    again = seal(body, key, 1616725497384)
    assert again.aes_key != sealed.aes_key and again.wire_body != sealed.wire_body


def test_seal_with_the_docs_key_matches_the_known_answer(pair: rsa.RSAPrivateKey) -> None:
    key = load_public_key(base64.b64encode(spki_der(pair)).decode())
    sealed = seal({"appkey": "test", "lang": "_en_US"}, key, 1, aes_key=DOC_KEY)
    sent = json.loads(aes_decrypt_hex(sealed.wire_body, DOC_KEY))
    assert sent["appkey"] == "test" and sent["api_key_param"]["timestamp"] == "1"


# -- login body and the shared token ----------------------------------------------------------------


def test_login_body() -> None:
    plain = login_body("AK", "user@example.com", "pw", encrypted=False, lang="_en_US")
    assert plain == {
        "appkey": "AK",
        "user_account": "user@example.com",
        "user_password": "pw",
        "lang": "_en_US",
    }
    assert login_body("AK", "u", "pw", encrypted=True, lang="_en_US")["login_type"] == "1"


def test_account_id_is_stable_and_not_secret() -> None:
    a = account_id("APPKEY123", "user")
    assert a == account_id("APPKEY123", "user") and a != account_id("APPKEY123", "other")
    assert "APPKEY123" not in a and len(a) == 16


def test_token_store_shares_expires_and_locks(tmp_path: Path) -> None:
    clock = FakeClock()
    state = State(tmp_path / "s", clock)
    one, two = TokenStore(state, clock, "acct"), TokenStore(state, clock, "acct")
    assert one.get() is None
    one.put("1_tok")
    assert two.get() == "1_tok" and TokenStore(state, clock, "other").get() is None
    # Reopened (a restart): still there.
    assert TokenStore(State(tmp_path / "s", clock), clock, "acct").get() == "1_tok"
    # Touched (at most hourly) while used: it never lapses.
    for _ in range(30):
        clock.advance(TOKEN_TOUCH)
        one.touch("1_tok")
    assert two.get() == "1_tok"
    clock.advance(TOKEN_TTL + 1)
    assert two.get() is None
    # One lock holder at a time; a dead holder's lock expires.
    assert one.try_lock("p1") and one.try_lock("p1") and not two.try_lock("p2")
    one.unlock("p2")  # not the holder: no effect
    assert not two.try_lock("p2")
    one.unlock("p1")
    assert two.try_lock("p2")
    clock.advance(LOGIN_LOCK_TTL + 1)
    assert one.try_lock("p1")
    # E916 back-off, seen by every store of the account, over when its time comes.
    assert one.backoff_until() is None
    one.back_off(clock.time() + 900)
    assert two.backoff_until() == clock.time() + 900
    clock.advance(901)
    assert two.backoff_until() is None
