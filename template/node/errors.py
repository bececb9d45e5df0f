"""Start-up errors: each one names the fix. The neurons print them and exit with status 2."""


class StartupError(RuntimeError):
    """Something the operator must fix before the node can run."""
