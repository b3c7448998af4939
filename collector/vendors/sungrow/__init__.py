"""Sungrow iSolarCloud Open API V1 (appkey + account login, `sys_code` 901).

Layer 1 so far: `codes` (result_code → our exceptions), `auth` (RSA/AES encryption,
login answers) and `transport` (HTTP, budget, token, clock offset). The client class,
discovery and mapping come next; `VENDORS` does not list Sungrow yet.
"""
