"""The request signature: known vectors, path only, literal backslash separators."""

from __future__ import annotations

import hashlib

from collector.vendors.foxess.auth import SEPARATOR, sign_path, signature, signed_headers


def test_golden_vector_from_the_field_notes() -> None:
    # research/foxess.md §2.1: path, all-zero key, 1700000000000 → a string of 81
    # characters whose md5 is 6f87e564…; the CR LF variant (77 chars) differs.
    key = "00000000-0000-0000-0000-000000000000"
    assert signature("/op/v0/device/real/query", key, 1700000000000) == "6f87e56417f1a153f7922fd957037c38"
    crlf = "/op/v0/device/real/query\r\n" + key + "\r\n1700000000000"
    assert len(crlf) == 77
    assert hashlib.md5(crlf.encode()).hexdigest() == "dd1de7394ca36ad9d0427ae6621e26c3"


def test_a_vector_computed_by_hand() -> None:
    # Computed outside the code under test: printf '%s' \
    #   '/op/v1/device/real/query\r\nabcd1234-test-key\r\n1726084857000' | md5sum
    # (printf '%s' keeps the backslashes literal: 24 + 4 + 17 + 4 + 13 = 62 characters).
    assert signature("/op/v1/device/real/query", "abcd1234-test-key", 1726084857000) == (
        "a6a88ecac76be9ef03ffc34965784abf"
    )


def test_the_separator_is_four_literal_characters_not_crlf() -> None:
    assert SEPARATOR == "\\r\\n" and len(SEPARATOR) == 4 and "\r" not in SEPARATOR


def test_only_the_path_is_signed() -> None:
    plain = signature("/op/v0/device/generation", "abcd1234-test-key", 1700000000000)
    assert plain == "c8f5fe12a1f15cf05bc5df28a2ddd9dc"  # computed by hand like the vector above
    assert signature("/op/v0/device/generation?sn=TESTSN1", "abcd1234-test-key", 1700000000000) == plain
    assert (
        signature(
            "https://www.foxesscloud.com/op/v0/device/generation?sn=X", "abcd1234-test-key", 1700000000000
        )
        == plain
    )
    assert sign_path("https://www.foxesscloud.com/op/v0/device/generation?sn=X") == "/op/v0/device/generation"


def test_headers_carry_the_same_timestamp_as_the_signature() -> None:
    h = signed_headers("/op/v0/device/list", "k", 1700000000123)
    assert h["timestamp"] == "1700000000123"
    assert h["signature"] == signature("/op/v0/device/list", "k", 1700000000123)
    assert h["token"] == "k" and h["lang"] == "en"
    assert "User-Agent" not in h  # the app's session sets a descriptive one
    assert signed_headers("/op/v0/device/list", "k", 1700000001123)["signature"] != h["signature"]
