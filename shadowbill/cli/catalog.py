"""``shadowbill catalog``: catalogs brought in from other billing engines."""

from __future__ import annotations

import re
from pathlib import Path

import click

from shadowbill.cli.errors import InterruptibleGroup, debug_option, user_errors
from shadowbill.errors import CatalogError

_TAX = re.compile(r"^(?P<country>[A-Za-z]{2})=(?P<pct>\d+(?:\.\d+)?)$")


@click.group(cls=InterruptibleGroup, context_settings={"help_option_names": ["-h", "--help"]})
@debug_option
def catalog() -> None:
    """Catalogs: import another engine's price book as a legacy catalog YAML."""


@catalog.command("import")
@click.option(
    "--from",
    "engine",
    required=True,
    type=click.Choice(["killbill"]),
    help="The engine whose catalog format CATALOG is in.",
)
@click.argument("catalog_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Legacy catalog YAML to write.",
)
@click.option(
    "--tax",
    "taxes",
    multiple=True,
    metavar="COUNTRY=PERCENT",
    help="An exclusive tax rate the legacy engine charged customers of a country (repeatable;"
    " Kill Bill's catalog holds none: its tax comes from a plugin).",
)
@user_errors
def import_(engine: str, catalog_path: Path, out_path: Path, taxes: tuple[str, ...]) -> None:
    """Convert CATALOG (a Kill Bill catalog XML) into a legacy catalog YAML."""
    from shadowbill.pricing.killbill_catalog import import_catalog

    rates = []
    for given in taxes:
        match = _TAX.match(given.strip())
        if match is None:
            raise CatalogError(f"--tax {given!r}: expected COUNTRY=PERCENT, e.g. DE=19")
        country = match["country"].upper()
        rates.append(
            {
                "id": f"tax_{country.lower()}",
                "display_name": f"Tax {country}",
                "percentage": match["pct"],
                "inclusive": False,
                "country": country,
            }
        )
    data = import_catalog(catalog_path, out_path, tax_rates=rates)
    click.echo(
        f"{out_path}: {len(data['products'])} products, {len(data['prices'])} prices"
        f" from {engine} catalog {data['catalog']}"
    )
