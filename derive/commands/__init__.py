"""One module per CLI command. Each defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.

``COMMANDS`` lists the module names in the order ``derive --help`` shows them; a
new command is a new module here and one line in this list.
"""
COMMANDS = ["demo", "list", "gradcheck", "code", "generate", "grade", "sheet"]
