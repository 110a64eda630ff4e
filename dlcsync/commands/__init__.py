"""The operator commands of ``dlcsync`` (DESIGN §5), one module per topic.

Commands are thin: they parse options, call plain functions in ``models`` (or the worker's
reconciler) inside one transaction, and print with ``rich``. Exit codes: 0 all good, 1 some
numbers rejected (or nothing found), 2 usage errors (click's own code).
"""
