"""Route table rows: Reports: bills and activity in the site's time zone (issue 11).

Joined into routes.OPERATIONS; the same rules as the rows there.
"""

from __future__ import annotations

from .table import Operation

OPERATIONS: tuple[Operation, ...] = ()
