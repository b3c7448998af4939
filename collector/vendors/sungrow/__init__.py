"""Sungrow iSolarCloud Open API V1 (appkey + account login, `sys_code` 901).

Layers: `auth` (RSA/AES encryption, login answers) and `transport` + `codes` (HTTP,
budget, token, clock offset, result_code → our exceptions) → `responses` (the
vendor's shapes, no conversion) → `mapping` + `points` (declarative tables, pure
mappers, the point ids asked for) → `client` (discovery, streams, faults, quota,
minute history). `spec` holds the limits and streams; docs/vendors/sungrow.md is the
user-facing page.
"""

from __future__ import annotations

from collector.vendors.sungrow.client import SungrowClient
from collector.vendors.sungrow.mapping import PARSERS, TABLES
from collector.vendors.sungrow.spec import SUNGROW_SPEC

__all__ = ["PARSERS", "SUNGROW_SPEC", "TABLES", "SungrowClient"]
