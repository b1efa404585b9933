"""Download, verify and safely extract the CUB-200-2011 archive."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from trainer.data.cub import ROOT_NAME, DatasetError

CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
CUB_MD5 = "97eceeb196236b17998738112f37df78"
ARCHIVE_NAME = "CUB_200_2011.tgz"
CHUNK = 1 << 20


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _manual_hint(url: str, dest: Path) -> str:
    return (
        f"download {url} by hand (a browser works), then run "
        f"`tricklab data fetch-cub {dest} --url file:///path/to/{ARCHIVE_NAME}`"
    )


def _download(url: str, md5: str, dest: Path, progress: bool) -> Path:
    """Stream ``url`` into a temporary file in ``dest``; return it once its md5 is right."""
    partial = Path(tempfile.mkstemp(prefix=f".{ARCHIVE_NAME}-", suffix=".part", dir=dest)[1])
    digest = hashlib.md5()
    try:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=ARCHIVE_NAME, disable=not progress) as bar:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DatasetError(f"cannot download {url} ({exc}); {_manual_hint(url, dest)}") from None
        if digest.hexdigest() != md5:
            raise DatasetError(
                f"the file from {url} has md5 {digest.hexdigest()}, expected {md5}: it is corrupt or not the "
                f"CUB-200-2011 archive. It was deleted; try again, or {_manual_hint(url, dest)}"
            )
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return partial


def _extract(archive: Path, dest: Path) -> Path:
    """Extract into a scratch folder, then move its CUB_200_2011/ into place in one rename."""
    scratch = Path(tempfile.mkdtemp(prefix=f".{ROOT_NAME}-extract-", dir=dest))
    try:
        try:
            with tarfile.open(archive) as tar:
                # The "data" filter refuses members that would land outside the folder, links that
                # point outside it, device files and unsafe permissions.
                tar.extractall(scratch, filter="data")
        except tarfile.FilterError as exc:
            raise DatasetError(f"{archive} is unsafe to extract and was left untouched: {exc}") from None
        except (tarfile.TarError, OSError) as exc:
            raise DatasetError(f"cannot extract {archive} ({exc}); delete it and fetch again") from None
        extracted = scratch / ROOT_NAME
        if not extracted.is_dir():
            raise DatasetError(f"{archive} holds no {ROOT_NAME}/ folder; it is not the CUB-200-2011 archive")
        target = dest / ROOT_NAME
        extracted.rename(target)
        return target
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fetch_cub(dest: str | Path, *, url: str = CUB_URL, md5: str = CUB_MD5, progress: bool = True) -> Path:
    """Fetch the archive into ``dest`` (kept there as CUB_200_2011.tgz) and extract it.

    The download is skipped when ``dest`` already holds the archive with the right md5. Returns
    ``dest/CUB_200_2011``; refuses to replace an existing one.
    """
    dest = Path(dest).expanduser()
    target = dest / ROOT_NAME
    if target.exists():
        raise DatasetError(
            f"{target} already exists; check it with `tricklab data check {dest}`, or move it away to fetch again"
        )
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / ARCHIVE_NAME
    md5 = md5.lower()
    if not (archive.is_file() and _md5(archive) == md5):
        _download(url, md5, dest, progress).replace(archive)
    return _extract(archive, dest)
