"""The command line interface (``geosound``)."""
