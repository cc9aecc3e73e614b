"""Migration targets: Stripe through its SDK, Stripe's migration CSV, and JSONL of the operations."""
