"""`tradetune report`: a self-contained HTML page with the plots that judge a sweep."""
from __future__ import annotations

from pathlib import Path


def write_report(url: str, study_name: str, out: Path) -> Path:
    """Write ``out/index.html`` and its PNG images; return the index path."""
    from search.errors import UserError

    raise UserError("report is not implemented yet")
