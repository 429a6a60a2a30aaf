"""Webhook secrets sealed at rest, and revoked API keys and bearer tokens.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

``webhook_subscriptions.secret`` (plaintext) becomes ``secret_sealed`` (AES-256-GCM, see
:mod:`cloud.services.webhook_secrets`). The key is not in the database, so the hub hands it in
(``config.attributes["webhook_secret_box"]``, from :func:`cloud.db.migrate`); a database that
holds subscriptions cannot be upgraded without it (the upgrade says so and changes nothing),
while an empty one can. The downgrade opens the secrets again with the same key.

``revoked_credentials``: API keys (by digest) and bearer tokens (by ``jti``) refused although the
settings still list the key or the token has not expired.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from cloud.services.webhook_secrets import SecretBox

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
_subs = sa.table(
    "webhook_subscriptions",
    sa.column("id", sa.Uuid()),
    sa.column("secret", sa.String()),
    sa.column("secret_sealed", sa.String()),
)


def _box(rows: int) -> SecretBox | None:
    box = context.config.attributes.get("webhook_secret_box")
    if box is None and rows:
        raise RuntimeError(
            f"{rows} webhook subscriptions hold plaintext secrets: migrate through the hub "
            "(lastmile hub serve, or cloud.db.migrate(url, webhook_secret_box=...)) so they "
            "are sealed with its key"
        )
    assert box is None or isinstance(box, SecretBox)
    return box


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_subs.c.id, _subs.c.secret)).all()
    box = _box(len(rows))  # before any change: without the key, nothing is touched
    with op.batch_alter_table("webhook_subscriptions") as batch:
        batch.add_column(sa.Column("secret_sealed", sa.String(length=400), nullable=True))
    for sub_id, secret in rows:
        assert box is not None
        sealed = box.seal(secret, subscription_id=sub_id)
        bind.execute(_subs.update().where(_subs.c.id == sub_id).values(secret_sealed=sealed))
    with op.batch_alter_table("webhook_subscriptions") as batch:
        batch.alter_column("secret_sealed", existing_type=sa.String(length=400), nullable=False)
        batch.drop_column("secret")
    op.create_table(
        "revoked_credentials",
        sa.Column("kind", sa.String(length=5), primary_key=True),
        sa.Column("ident", sa.String(length=64), primary_key=True),
        sa.Column("revoked_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("revoked_by", sa.String(length=100), nullable=False),
    )


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_subs.c.id, _subs.c.secret_sealed)).all()
    box = _box(len(rows))
    op.drop_table("revoked_credentials")
    with op.batch_alter_table("webhook_subscriptions") as batch:
        batch.add_column(sa.Column("secret", sa.String(length=200), nullable=True))
    for sub_id, sealed in rows:
        assert box is not None
        plain = box.open(sealed, subscription_id=sub_id)
        bind.execute(_subs.update().where(_subs.c.id == sub_id).values(secret=plain))
    with op.batch_alter_table("webhook_subscriptions") as batch:
        batch.alter_column("secret", existing_type=sa.String(length=200), nullable=False)
        batch.drop_column("secret_sealed")
