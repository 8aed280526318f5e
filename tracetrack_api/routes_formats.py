"""Route table rows: parent formats as data, managed by admins (issue 12).

Joined into routes.OPERATIONS; the same rules as the rows there.
"""

from __future__ import annotations

from .table import Operation

OPERATIONS: tuple[Operation, ...] = ()
