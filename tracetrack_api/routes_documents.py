"""Route table rows: Dispatch documents: bill manifests as JSON, CSV and PDF (issue 11).

Joined into routes.OPERATIONS; the same rules as the rows there.
"""

from __future__ import annotations

from .table import Operation

OPERATIONS: tuple[Operation, ...] = ()
