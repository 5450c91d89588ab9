"""What every command-line tool of both packages shares: the one exit-status policy and
SIGTERM handled as Ctrl-C (`termination`), console text and `--help` layout (`console`).

Imports nothing of the project.
"""
