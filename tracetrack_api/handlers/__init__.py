"""Plain handler functions, one per operation of the route table:
`handler(ctx, **params)`, parameters already checked, no HTTP in sight."""
