"""Route table rows: Bulk import jobs and label extraction rules (issue 11).

Joined into routes.OPERATIONS; the same rules as the rows there.
"""

from __future__ import annotations

from .table import Operation

OPERATIONS: tuple[Operation, ...] = ()
