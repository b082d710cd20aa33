"""The ``central-hub`` command: argument parsing and the server's start."""
