"""The typed errors a migration engineer sees: one base, one sentence each."""

from __future__ import annotations


class ShadowbillError(Exception):
    """A failure the user can act on; the CLI prints it on one line and exits 2."""


class MoneyError(ShadowbillError):
    """An amount or currency that cannot be represented exactly."""


class UnknownCurrencyError(MoneyError):
    """A currency code that is not in ISO 4217."""


class InputError(ShadowbillError):
    """An input file, table or database that cannot be used as given."""


class SnapshotError(InputError):
    """A snapshot folder that is missing, incomplete or corrupted."""


class ExtractSpecError(InputError):
    """An extract spec (YAML) that does not describe a usable extraction."""


class SourceError(InputError):
    """A legacy source (database or folder) that cannot be read."""


class CatalogError(InputError):
    """A catalog (price book) that does not validate; names file, line and key."""


class RolloutError(InputError):
    """A rollout rules file that does not validate; names file, line and key."""


class PolicyError(InputError):
    """A gate policy file that does not validate."""


class PricingError(ShadowbillError):
    """A subscription that cannot be priced with the given catalog."""


class ReportError(ShadowbillError):
    """A reconciliation result that cannot be rendered, or a report that cannot be written."""


class PlanError(ShadowbillError):
    """A migration plan that cannot answer what was asked (a subscription not in its cohort)."""


class PartitionError(ShadowbillError):
    """A partition of a run that failed twice; the message names it and its customers."""


class ClusterError(ShadowbillError):
    """A Dask cluster that cannot run the partitions: unreachable, no workers, or paths unseen."""


class TargetError(ShadowbillError):
    """A migration target that cannot be used, refused a request, or cannot carry a batch."""


class MissingApiKeyError(TargetError):
    """The Stripe secret key is not configured (the message names the variable, never a value)."""


class TargetRequestError(TargetError):
    """A request the target refused after retries, with Stripe's error code and HTTP status."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class StripeCsvError(TargetError):
    """A batch that the Stripe migration toolkit CSV cannot carry as asked."""


class ContractError(ShadowbillError):
    """A request that Stripe's published API specification does not allow."""


class LocalServerError(ShadowbillError):
    """A local Stripe-compatible server or fault proxy that could not be started."""


class OperationsError(PlanError):
    """A plan that cannot be turned into target operations (names the subscription or coupon)."""


class OperationsFileError(InputError):
    """An operations file (JSONL) that cannot be read back as operations."""


class MigrationError(ShadowbillError):
    """A migration step that cannot run as asked; names the batch and what to do."""


class InputsChangedError(MigrationError):
    """The batch's inputs (customer rows, rollout, catalogs, policy) changed since its plan."""


class GateClosedError(MigrationError):
    """A batch asked to be applied or cut over without a passed (or forced) gate."""
