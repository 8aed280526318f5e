"""HTTP resources: small noun classes given their dependencies in __init__."""
