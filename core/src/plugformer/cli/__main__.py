"""``python -m plugformer.cli``: the ``plugformer`` command."""

from plugformer.cli.main import main

main()
