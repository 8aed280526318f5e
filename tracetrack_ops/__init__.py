"""Operations tools, kept apart from the library and the service: the
`tracetrack` command (db, users, serve, loadtest, verify), the seed and demo
data, server sizing and the granian runner."""
