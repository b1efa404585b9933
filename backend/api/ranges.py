"""A file sent streamed, whole or one byte range of it (RFC 9110, section 14), from an open descriptor.

One range only: ``bytes=A-B``, ``bytes=A-`` or ``bytes=-N``. Any other Range (several ranges, another
unit, nonsense) is ignored and the whole file sent, as the RFC allows; a range that starts past the
end is a 416 naming the size. ``If-Range`` with the file's ETag or Last-Modified keeps the range; with
another value (the file changed) the whole file comes back, so a resumed download never mixes two
versions of a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from email.utils import formatdate
from urllib.parse import quote

from fastapi.responses import JSONResponse, Response, StreamingResponse

from backend.services.run_files import OpenedFile

CHUNK_BYTES = 256 * 1024
_SINGLE_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")


def single_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) byte for a satisfiable range, None to send everything, "unsatisfiable" for a 416."""
    match = _SINGLE_RANGE.fullmatch(header.strip().replace(" ", "")) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first_text, last_text = match.groups()
    if first_text == "":  # the last N bytes
        length = int(last_text)
        if length == 0:
            return "unsatisfiable"
        return (max(size - length, 0), size - 1) if size else "unsatisfiable"
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # not a valid range-spec: ignored
    if first >= size:
        return "unsatisfiable"
    return first, min(int(last_text), size - 1) if last_text else size - 1


def file_response(opened: OpenedFile, *, range_header: str | None, if_range: str | None, filename: str) -> Response:
    """The 200 or 206 answer streaming ``opened`` (and closing it), or a 416; the caller no longer owns the fd."""
    etag = f'"{opened.size:x}-{opened.modified_ns:x}"'
    last_modified = formatdate(opened.modified, usegmt=True)
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Last-Modified": last_modified,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
    }
    wanted = single_range(range_header, opened.size)
    if if_range is not None and if_range.strip() not in (etag, last_modified):
        wanted = None
    if wanted == "unsatisfiable":
        os.close(opened.fd)
        return JSONResponse(
            {"detail": f"the range {range_header} starts past the end of the file ({opened.size} bytes)"},
            status_code=416,
            headers={"Content-Range": f"bytes */{opened.size}", "Accept-Ranges": "bytes"},
        )
    if wanted is None:
        first, last, status = 0, opened.size - 1, 200
    else:
        assert isinstance(wanted, tuple)
        (first, last), status = wanted, 206
        headers["Content-Range"] = f"bytes {first}-{last}/{opened.size}"
    headers["Content-Length"] = str(last - first + 1)
    return StreamingResponse(
        _read(opened.fd, first, last - first + 1),
        status_code=status,
        media_type="application/octet-stream",
        headers=headers,
    )


def _read(fd: int, start: int, length: int) -> Iterator[bytes]:
    """``length`` bytes from ``start``; the descriptor is closed at the end, or when the client leaves."""
    try:
        while length > 0:
            chunk = os.pread(fd, min(CHUNK_BYTES, length), start)
            if not chunk:  # the file shrank since it was opened: the answer ends short
                return
            start += len(chunk)
            length -= len(chunk)
            yield chunk
    finally:
        os.close(fd)
