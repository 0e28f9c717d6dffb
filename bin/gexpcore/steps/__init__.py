"""The pipeline's steps and the `gexp` subcommands, one module each."""
