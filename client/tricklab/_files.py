"""The files' part of ``Client``: a run's folder listed, one file downloaded, or all of it pulled."""

from __future__ import annotations

import os
from pathlib import Path

from tricklab import downloads
from tricklab._transport import _Transport
from tricklab.models import RunFile, RunFiles


class _Files:
    _transport: _Transport

    def run_files(self, run_id: int) -> RunFiles:
        """The files of the run's folder with their sizes and kinds (config, metrics, checkpoint, ...)."""
        return RunFiles.model_validate(self._transport.get(f"/runs/{run_id}/files"))

    def download_file(self, run_id: int, path: str | RunFile, dest: str | os.PathLike[str]) -> Path:
        """One file of the run's folder (a path, or a ``RunFile`` from ``run_files``) saved at ``dest``; a
        ``DEST.part`` left by a broken download is resumed with Range (given a RunFile, only while the file's
        time is the listed one, and a file already at ``dest`` with its size is kept). Incomplete when the
        size that arrived is not the server's."""
        return downloads.download(self._transport, run_id, path, Path(dest))

    def pull(self, run_id: int, out: str | os.PathLike[str], *, zip: bool = False) -> list[Path]:
        """Every file of the run's folder under ``out`` (its layout kept), each resumed where a part exists and
        checked against the listed size; files already there with that size are kept. With ``zip``: one
        ``run-ID.zip`` of the folder without its checkpoints instead. Returns the paths written."""
        folder = Path(out)
        if zip:
            return [downloads.download_zip(self._transport, run_id, folder / f"run-{run_id}.zip")]
        files = self.run_files(run_id).data
        targets = [(file, downloads.local_path(folder, file.path)) for file in files]  # all checked first
        return [downloads.download(self._transport, run_id, file, target) for file, target in targets]
