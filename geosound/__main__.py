"""``python -m geosound`` runs the CLI."""

from geosound.cli.app import main

main()
