"""`ddbsearch package`: build the Lambda zip."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ddbsearch.cli import console
from ddbsearch.packaging import build_lambda_zip, zip_sha256

app = typer.Typer(rich_markup_mode="rich")


@app.command()
def package(
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Where to write the zip.", envvar="DDBSEARCH_ZIP"),
    ] = Path("ddbsearch-lambda.zip"),
) -> None:
    """Build the indexer's Lambda zip (pure Python, reproducible); print its path."""
    path = build_lambda_zip(output)
    console.info(f"{path.stat().st_size:,} bytes, sha256 {zip_sha256(path)}")
    console.out.print(str(path))
