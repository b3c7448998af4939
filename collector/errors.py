"""The one exception tree. The scheduler decides by class, never by message text."""

from __future__ import annotations


class CollectorError(Exception):
    """Base of every error the collector raises on purpose."""


class ConfigError(CollectorError):
    """A configuration problem; `key` names the offending key (`sources[1].interval`)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


class BudgetExhaustedError(CollectorError):
    """Our own budget refuses a call: making it could trip a vendor limit."""

    def __init__(self, message: str, *, retry_at: float | None = None) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class VendorError(CollectorError):
    """A vendor cloud call failed. Carries vendor, endpoint and the vendor's code."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str = "",
        endpoint: str = "",
        code: int | str | None = None,
    ) -> None:
        super().__init__(message)
        self.vendor = vendor
        self.endpoint = endpoint
        self.code = code


class VendorAuthError(VendorError):
    """Credentials refused or token expired: re-authenticate, or stop and say so."""


class VendorRateLimitError(VendorError):
    """The vendor says we called too often; `retry_at` is a Unix time (None: unknown)."""

    def __init__(self, message: str, *, retry_at: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_at = retry_at


class VendorQuotaError(VendorRateLimitError):
    """A daily (or longer) quota is used up."""


class VendorTransientError(VendorError):
    """Worth retrying later: timeouts, 5xx, maintenance, HTML error pages."""


class VendorResponseError(VendorError):
    """The vendor rejected the request as malformed (our bug or a bad config value)."""


class VendorDataQualityError(VendorError):
    """The answer arrived but its content cannot be used (malformed JSON, wrong shape)."""


class SinkError(CollectorError):
    """Writing to the sink failed."""


class SinkRetryableError(SinkError):
    """Try again later; `retry_after` in seconds when the server said so."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class SinkAuthError(SinkRetryableError):
    """401/403 or a missing database: keep the points, retry slowly, say so loudly."""


class SinkRejectedError(SinkError):
    """The server refused the data itself (400/422): retrying cannot help."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
