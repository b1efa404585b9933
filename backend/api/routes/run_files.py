"""/api/v1/runs/{id}/files: a run's folder to take away, file by file (with Range) or as one zip."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi import Path as PathParameter
from fastapi.responses import Response, StreamingResponse

from backend.api.deps import RunId, SessionDep, SettingsDep
from backend.api.ranges import file_response
from backend.api.responses import READ_ONE, json_errors
from backend.schemas.run_files import RunFilePublic, RunFilesPublic
from backend.services import run_archive, run_files

router = APIRouter(prefix="/runs", tags=["runs"])

_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_RANGE_HEADERS = {
    "Accept-Ranges": {"description": "bytes", "schema": {"type": "string"}},
    "Content-Length": {"schema": {"type": "integer"}},
    "ETag": {"description": "changes with the file's size or time", "schema": {"type": "string"}},
    "Last-Modified": {"schema": {"type": "string"}},
}
DOWNLOAD: dict[int | str, dict[str, Any]] = {
    200: {"description": "the whole file", "content": _BINARY, "headers": _RANGE_HEADERS},
    206: {
        "description": "the byte range asked for",
        "content": _BINARY,
        "headers": {**_RANGE_HEADERS, "Content-Range": {"schema": {"type": "string"}}},
    },
    416: {
        "description": "the range starts past the end of the file; Content-Range gives its size",
        "headers": {"Content-Range": {"description": "bytes */SIZE", "schema": {"type": "string"}}},
        "content": json_errors(404)[404]["content"],
    },
    **json_errors(404, 422, 503),
}
ZIP: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "a zip of the run's folder without checkpoints/",
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    },
    **json_errors(404, 422, 503),
}


@router.get("/{run_id}/files", responses=READ_ONE)
def list_run_files(run_id: RunId, session: SessionDep, settings: SettingsDep) -> RunFilesPublic:
    """The regular files of the run's folder with their sizes: config, metrics, result, checkpoints,
    TensorBoard events, logs. A queued run has none yet."""
    files = run_files.list_files(session=session, settings=settings, run_id=run_id)
    data = [
        RunFilePublic(
            path=file.path, size=file.size, kind=file.kind, modified_at=datetime.fromtimestamp(file.modified, UTC)
        )
        for file in files
    ]
    return RunFilesPublic(data=data, count=len(data), total_bytes=sum(file.size for file in files))


# response_class=Response (no media type of its own): the refusals and errors stay documented as the JSON they are.
@router.get("/{run_id}/files.zip", response_class=Response, responses=ZIP)
def download_run_zip(run_id: RunId, session: SessionDep, settings: SettingsDep) -> StreamingResponse:
    """The run's folder as one zip, streamed as it is made, without its checkpoints (fetch those one
    by one): entries under run-ID/."""
    pieces = run_archive.run_archive(session=session, settings=settings, run_id=run_id)
    name = run_archive.archive_name(run_id)
    return StreamingResponse(
        pieces, media_type="application/zip", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get("/{run_id}/files/{path:path}", response_class=Response, responses=DOWNLOAD)
def download_run_file(
    run_id: RunId,
    path: Annotated[str, PathParameter(description="a path from the file list, e.g. checkpoints/best.pt")],
    session: SessionDep,
    settings: SettingsDep,
    range_header: Annotated[
        str | None,
        Header(alias="Range", description="one byte range, e.g. bytes=1000- to resume; others are ignored"),
    ] = None,
    if_range: Annotated[
        str | None, Header(alias="If-Range", description="the ETag or Last-Modified the range is taken from")
    ] = None,
) -> Response:
    """One file of the run's folder, streamed, with Range for a resumed download. A path outside the
    folder, through a symlink, or that names no regular file is a 404, as a missing file is."""
    opened = run_files.open_file(session=session, settings=settings, run_id=run_id, path=path)
    return file_response(opened, range_header=range_header, if_range=if_range, filename=path.rsplit("/", 1)[-1])
