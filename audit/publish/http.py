"""An HTTP client for the GitHub and GitLab REST APIs that waits out limits and faults.

It honours Retry-After and x-ratelimit-reset, backs off exponentially on
secondary rate limits, 5xx and connection errors, and gives up with a clear
error once the total time bound of the RateLimitPolicy would be passed. The token
goes only in a header, only to the configured API origin (a Link header that
points elsewhere is refused), and is scrubbed from every message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.auth

from audit import __version__
from audit.errors import PublishError
from audit.publish.settings import RateLimitPolicy, Secret
from audit.report.escape import clean_text

RETRY_STATUSES = {500, 502, 503, 504}


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names
    data: Any

    def link(self, rel: str) -> str | None:
        """The URL of `rel` in the Link header (RFC 8288), if any."""
        for part in self.headers.get("link", "").split(","):
            section = part.split(";")
            if len(section) < 2:
                continue
            url = section[0].strip().strip("<>")
            if any(p.strip() == f'rel="{rel}"' for p in section[1:]):
                return url
        return None


class _HeaderAuth(requests.auth.AuthBase):
    """Adds the token header to each request; shows nothing when printed."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._headers)
        return request

    def __repr__(self) -> str:
        return "_HeaderAuth(***)"


class ApiError(PublishError):
    """The API answered with an error that retrying will not fix."""

    def __init__(self, status: int, message: str, *, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.status = status


class ApiClient:
    def __init__(
        self,
        api_url: str,
        token: Secret,
        auth_header: Callable[[str], dict[str, str]],
        retry: RateLimitPolicy,
        *,
        extra_headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._origin = urlsplit(self.api_url)
        self._token = token
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._session = requests.Session()
        # Proxies from the environment still apply (enterprise runners need them);
        # an explicit auth object keeps ~/.netrc from replacing our credentials.
        self._session.auth = _HeaderAuth(auth_header(token.reveal()) if token else {})
        self._session.headers.update(
            {"User-Agent": f"mlaudit/{__version__}", **(extra_headers or {})}
        )
        self.waits: list[float] = []  # every wait taken, for the caller's log
        # One bound for the whole publish, not per request: a run of slow
        # requests must not add up to hours.
        self._deadline: float | None = None

    def scrub(self, text: str) -> str:
        return self._token.scrub(text)

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            parts = urlsplit(path_or_url)
            if (parts.scheme, parts.netloc) != (self._origin.scheme, self._origin.netloc) or (
                not parts.path.startswith(self._origin.path)
            ):
                raise PublishError("the API pointed to a URL outside its own origin; refused")
            return path_or_url
        return self.api_url + path_or_url

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Response:
        url = self._url(path_or_url)
        if self._deadline is None:
            self._deadline = self._clock() + self._retry.max_total
        deadline = self._deadline
        attempt = 0
        while True:
            attempt += 1
            try:
                # No redirects: a redirect to another host would carry the token along.
                raw = self._session.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    timeout=self._retry.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as error:
                wait = self._backoff(attempt)
                reason = f"{type(error).__name__}"
            else:
                response = self._response(raw)
                wait_or_none = self._retry_wait(response, attempt)
                if wait_or_none is None:
                    return self._checked(method, url, response)
                wait = wait_or_none
                reason = f"HTTP {response.status}"
            if self._clock() + wait > deadline:
                raise PublishError(
                    self.scrub(
                        f"{method} {self._display(url)} still failing ({reason}) after "
                        f"{attempt} attempts; gave up within {self._retry.max_total:g} s"
                    )
                )
            self.waits.append(wait)
            self._sleep(wait)

    def _display(self, url: str) -> str:
        return urlsplit(url).path

    @staticmethod
    def _response(raw: requests.Response) -> Response:
        headers = {k.lower(): v for k, v in raw.headers.items()}
        data: Any = None
        if raw.content:
            try:
                data = raw.json()
            except ValueError:
                data = raw.text[:2000]
        return Response(raw.status_code, headers, data)

    def _backoff(self, attempt: int) -> float:
        return float(min(self._retry.max_delay, self._retry.base_delay * 2 ** (attempt - 1)))

    def _retry_wait(self, response: Response, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when the response is final."""
        status, headers = response.status, response.headers
        message = _message(response.data).lower()
        retry_after = _retry_after(headers.get("retry-after"), self._wall_clock())
        if status == 429 or (status == 403 and "rate limit" in message):
            if retry_after is not None:
                return max(retry_after, 0.0)
            if headers.get("x-ratelimit-remaining") == "0":
                reset = _number(headers.get("x-ratelimit-reset"))
                if reset is not None:
                    return max(reset - self._wall_clock(), 0.0) + 1.0
            if "secondary" in message:
                return max(self._retry.secondary_min_delay, self._backoff(attempt))
            return self._backoff(attempt)
        if status in RETRY_STATUSES:
            return retry_after if retry_after is not None else self._backoff(attempt)
        return None

    def _checked(self, method: str, url: str, response: Response) -> Response:
        if 300 <= response.status < 400:
            raise ApiError(
                response.status,
                f"{method} {self._display(url)} was redirected (HTTP {response.status}); "
                "mlaudit does not follow API redirects: check the API URL and repository name",
            )
        if response.status < 400:
            return response
        # The API's words are untrusted too: one line, no control characters.
        detail = clean_text(_message(response.data), 300)
        raise ApiError(
            response.status,
            self.scrub(f"{method} {self._display(url)} failed: HTTP {response.status} {detail}"),
        )

    def paginate(self, path: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a paginated list, following Link rel="next" (GitHub and GitLab)."""
        response = self.request("GET", path, params={"per_page": 100, **(params or {})})
        while True:
            yield from response.data or []
            next_url = response.link("next")
            if not next_url:
                next_page = response.headers.get("x-next-page", "")
                if not next_page.isdigit():
                    return
                merged = {"per_page": 100, **(params or {}), "page": int(next_page)}
                response = self.request("GET", path, params=merged)
                continue
            response = self.request("GET", next_url)


def _message(data: Any) -> str:
    if isinstance(data, dict):
        for key in ("message", "error", "error_description"):
            if isinstance(data.get(key), str):
                return str(data[key])
        return ""
    return data if isinstance(data, str) else ""


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110)."""
    seconds = _number(value)
    if seconds is not None or value is None:
        return seconds
    try:
        return max(parsedate_to_datetime(value).timestamp() - now, 0.0)
    except (TypeError, ValueError, IndexError):
        return None
