"""download_url: fetch a file over HTTP(S) into the session, with limits."""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from tools.artifact import sniff_mime
from tools.base import Tool, ToolContext, ToolResult
from tools.errors import ToolError
from tools.settings import ToolSettings

REDIRECTS = {301, 302, 303, 307, 308}


def check_url(url: str, settings: ToolSettings) -> None:
    """Refuse schemes other than http(s) and, unless allowed, local-network hosts."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if not settings.allow_file_urls:
            raise ToolError(
                "file:// URLs are not allowed; attach the file instead "
                "(or set tools.allow_file_urls)"
            )
        return
    if parts.scheme not in ("http", "https"):
        raise ToolError(
            f"cannot download {parts.scheme or 'a URL without a scheme'}: only "
            "http:// and https:// URLs are supported"
        )
    if not parts.hostname:
        raise ToolError(f"{url} has no host name")
    if settings.allow_local_network:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ToolError(f"cannot resolve {parts.hostname}: {exc.strerror}") from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not addr.is_global:
            raise ToolError(
                f"{parts.hostname} is a local-network address ({addr}); downloads from "
                "loopback, private and link-local hosts are off (tools.allow_local_network)"
            )


def _file_name(url: str, disposition: str | None) -> str:
    if disposition:
        m = re.search(r"filename\*?=(?:UTF-8'')?\"?([^\";]+)\"?", disposition)
        if m:
            return Path(unquote(m.group(1))).name
    return Path(unquote(urlsplit(url).path)).name or "download"


class DownloadArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="an http:// or https:// URL")


class DownloadUrl(Tool):
    name = "download_url"
    description = (
        "Download a file (image, audio, video, text, mesh) from an http(s) URL into the session."
    )
    inputs = DownloadArgs
    outputs = ()  # any modality: decided by the bytes that arrive

    def run(self, args: DownloadArgs, ctx: ToolContext) -> ToolResult:
        import httpx

        s = ctx.settings
        url = args.url.strip()
        if urlsplit(url).scheme == "file":
            check_url(url, s)
            art = ctx.store.add_file(unquote(urlsplit(url).path))
            return ToolResult(artifacts=[art], summary=f"read {art.label()}")
        timeout = httpx.Timeout(s.download_timeout)
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            for _ in range(s.download_max_redirects + 1):
                check_url(url, s)
                try:
                    with client.stream("GET", url) as resp:
                        if resp.status_code in REDIRECTS and "location" in resp.headers:
                            url = urljoin(url, resp.headers["location"])
                            continue
                        if resp.status_code >= 400:
                            raise ToolError(
                                f"{url} answered HTTP {resp.status_code} {resp.reason_phrase}"
                            )
                        body = self._read_limited(resp, ctx)
                        name = _file_name(url, resp.headers.get("content-disposition"))
                        declared = resp.headers.get("content-type", "").split(";")[0].strip()
                        break
                except httpx.TimeoutException:
                    raise ToolError(
                        f"{url} did not answer within {s.download_timeout:g}s "
                        "(tools.download_timeout)"
                    ) from None
                except httpx.HTTPError as exc:
                    raise ToolError(f"downloading {url} failed: {exc}") from None
            else:
                raise ToolError(
                    f"{args.url} redirected more than {s.download_max_redirects} "
                    "times (tools.download_max_redirects)"
                )
        if not body:
            raise ToolError(f"{url} returned an empty body")
        mime = sniff_mime(body, name)
        if mime in ("application/octet-stream", "text/plain") and declared:
            mime = declared
        art = ctx.store.add_bytes(
            body, name=name, mime=mime, metadata={"url": url, "source_step": ctx.step_id}
        )
        return ToolResult(
            artifacts=[art],
            data={"url": url, "bytes": len(body), "mime": mime},
            summary=f"downloaded {name} ({len(body)} bytes, {art.modality.value})",
        )

    @staticmethod
    def _read_limited(resp: object, ctx: ToolContext) -> bytes:
        limit = ctx.settings.download_max_bytes
        length = resp.headers.get("content-length")  # type: ignore[attr-defined]
        if length and length.isdigit() and int(length) > limit:
            raise ToolError(
                f"the file is {int(length)} bytes; the limit is {limit} (tools.download_max_bytes)"
            )
        chunks, total = [], 0
        for chunk in resp.iter_bytes():  # type: ignore[attr-defined]
            total += len(chunk)
            if total > limit:
                raise ToolError(
                    f"the download passed the limit of {limit} bytes (tools.download_max_bytes)"
                )
            chunks.append(chunk)
            ctx.check_cancelled()
            if length and length.isdigit():
                ctx.report(total / int(length), f"{total} of {length} bytes")
        return b"".join(chunks)


download_url = DownloadUrl()
