"""The phased migration runner: plan, gate, apply, verify, cut over and roll back batches.

Every verb reads and writes the migration ledger (:mod:`shadowbill.ledger`), so that any
step can be rerun, after a crash at any point, without duplicating anything on the target.
One module per verb:

- :mod:`.plan` chooses the next batch of a phase (:mod:`.batch_select`), translates it, and
  records it with the fingerprints of its inputs (snapshot, its shared tables, rollout, both
  catalogs, policy, and the operations themselves) and one fingerprint per customer; it
  writes the operations for review into the batch folder (:mod:`.batch_files`).
- :mod:`.gate` reconciles the batch's subscriptions alone and records the verdict.
- :mod:`.apply` re-reads the inputs and stops when a batch customer's rows, the rollout, a
  catalog or the policy changed since the plan (:mod:`.batch_inputs`); then it creates the
  batch on the target through :class:`~shadowbill.targets.stripe_api.StripeTarget`,
  recording each created object in the ledger before any operation that depends on it
  starts. Objects the ledger already has are not sent again; an object created but not
  recorded (a crash between the answer and the ledger write) is found again by its
  Idempotency-Key or its lookup, never created twice.
- :mod:`.verify` compares the target's invoice preview of every applied subscription with
  the new model's first invoice after the cut-over (comparison C).
- :mod:`.cutover` writes the hand-over file, runs the legacy stop-billing statement for
  exactly those subscriptions in one transaction, and marks them cut over.
- :mod:`.rollback` removes what the batch created, in reverse order, and returns its
  subscriptions to the pool.

Every verb re-translates the batch from the same inputs at the plan's ``as_of`` (the
instant cohorts were judged at, recorded with the batch and passed explicitly), over the
batch's subscriptions alone.
"""

from shadowbill.errors import GateClosedError, InputsChangedError, MigrationError
from shadowbill.migrate.apply import ApplyResult, apply_batch
from shadowbill.migrate.batch_files import (
    CUTOVER_FILE,
    GATE_FILE,
    OPERATIONS_FILE,
    PLAN_FILE,
    STRIPE_CSV_FILE,
    VERIFY_FILE,
)
from shadowbill.migrate.batch_inputs import BatchInputs, batch_inputs
from shadowbill.migrate.cutover import CutoverResult, cutover_batch, stop_billing
from shadowbill.migrate.gate import GateResult, gate_batch
from shadowbill.migrate.plan import PlanResult, plan_batch
from shadowbill.migrate.rollback import RollbackResult, rollback_batch
from shadowbill.migrate.verify import VerifyResult, model_first_invoices, verify_batch

__all__ = [
    "CUTOVER_FILE",
    "GATE_FILE",
    "OPERATIONS_FILE",
    "PLAN_FILE",
    "STRIPE_CSV_FILE",
    "VERIFY_FILE",
    "ApplyResult",
    "BatchInputs",
    "CutoverResult",
    "GateClosedError",
    "GateResult",
    "InputsChangedError",
    "MigrationError",
    "PlanResult",
    "RollbackResult",
    "VerifyResult",
    "apply_batch",
    "batch_inputs",
    "cutover_batch",
    "gate_batch",
    "model_first_invoices",
    "plan_batch",
    "rollback_batch",
    "stop_billing",
    "verify_batch",
]
