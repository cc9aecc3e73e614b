"""The migration ledger: batches, subscription states and the audit log, in any SQLAlchemy database."""
