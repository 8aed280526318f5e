"""The version of TraceTrack, in one place.

`pyproject.toml` reads it from here (hatch's dynamic version), so the
installed distribution's metadata, `tracetrack --version`, GET /health,
`info.version` of /openapi.json and the `tracetrack_build_info` metric all
say the same, in an installed wheel and in a source checkout alike.
"""

__version__ = "0.2.0"
