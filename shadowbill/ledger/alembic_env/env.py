"""Alembic environment of the shadowbill ledger.

``shadowbill.ledger.migrations`` runs it with an open connection in
``config.attributes["connection"]`` (no alembic.ini needed); the ``alembic`` command
line works too, given ``-x url=<ledger URL>`` or ``sqlalchemy.url`` in an ini file.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from shadowbill.ledger.schema import VERSION_TABLE, metadata

config = context.config


def _url() -> str:
    """The ledger URL given on the alembic command line or in its ini file."""
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the ledger URL: alembic -x url=sqlite:///.shadowbill/ledger.db ...")
    return url


def _run(connection: sa.Connection) -> None:
    """Run the pending revisions on ``connection`` inside its transaction."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=_url(),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
    else:
        engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            _run(conn)
        engine.dispose()
