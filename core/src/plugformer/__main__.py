"""``python -m plugformer``: the ``plugformer`` command."""

from plugformer.cli.main import main

main()
