"""Entry point of the `arpo` console script (commands arrive with the CLI work of issue 8)."""

import typer

app = typer.Typer(help="ARPO Studio from the command line.", no_args_is_help=True)


@app.command()
def version() -> None:
    """Print the client version."""
    typer.echo("arpo 0.1.0")
