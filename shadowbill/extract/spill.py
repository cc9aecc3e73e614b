"""Stage one of a streaming extraction: staged rows routed to customer buckets and spilled to disk.

Each chunk read from the source is typed, given its rows' customer buckets (the routing of
:mod:`shadowbill.snapshot.buckets`: items, discounts and usage through their subscription's
customer, invoice lines through their invoice's), and written as one Arrow IPC file holding
one record batch per bucket. Stage two reads back any range of buckets, in source order,
without reading the rest. The keys needed by the checks that span customers (duplicate keys,
item histories) are spilled too, by a hash of the key, and counted a key partition at a
time. Only the subscription and invoice id maps stay in memory.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.extract.quarantine import BOOKKEEPING
from shadowbill.snapshot.partitions import BUCKETS, bucket_of
from shadowbill.snapshot.routing import ROUTES
from shadowbill.snapshot.tables import TABLES, Table, pandas_dtype

PARTS: Final = BUCKETS  # parts of a spill: customer buckets, or key partitions
SEQ: Final = "_seq"  # a row's position in its table's source order
BUCKET: Final = "_bucket"  # a row's customer bucket
# Tables whose equal keys can lie in different buckets (their rows are routed by something
# else than the key): duplicate keys are found over the whole table. Customers and usage
# are routed by (part of) their key, so all copies of a key share a bucket.
GLOBAL_KEYS: Final = (
    "subscriptions",
    "subscription_items",
    "discounts",
    "invoices",
    "invoice_lines",
)


def spill_schema(table: Table) -> pa.Schema:
    """The schema of a table's spilled rows: canonical columns, bookkeeping, order and bucket."""
    canonical = [pa.field(c.name, c.type) for c in table.columns]
    bookkeeping = [pa.field(name, pa.string()) for name in BOOKKEEPING]
    return pa.schema([*canonical, *bookkeeping, (SEQ, pa.int64()), (BUCKET, pa.int16())])


def _text(values: pd.Series) -> pa.Array:
    """Ids as Arrow text with missing ids as empty text (how snapshot_buckets looks them up).

    Always one Array: under pandas 3 an Arrow-backed column (e.g. of an empty CSV file)
    converts to a ChunkedArray, which ``pa.concat_arrays`` refuses.
    """
    ids = pa.array(values.astype("string").fillna(""), type=pa.string())
    return ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids


def _own(values: pa.Array) -> pa.Array:
    """A copy in buffers of its own: a column cut from a source batch would keep it all alive."""
    return pa.concat_arrays([values, pa.array([], type=values.type)])


def _pandas_type(arrow_type: pa.DataType) -> Any:
    if pa.types.is_string(arrow_type):
        return pd.StringDtype()
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    return None


class Spill:
    """Rows on disk as Arrow IPC files, one per appended chunk, one record batch per part.

    A part is a customer bucket (staged rows) or a key partition (keys); reading back any
    range of parts reads only their batches.
    """

    def __init__(self, folder: Path, schema: pa.Schema) -> None:
        self.folder = Path(folder)
        self.schema = schema
        self.reset()

    def reset(self) -> None:
        """Forget every row (a table read again from the start)."""
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        self._chunks: list[tuple[Path, npt.NDArray[np.int64]]] = []  # file, batch of each part
        self.rows_per_part = np.zeros(PARTS, dtype=np.int64)

    @property
    def rows(self) -> int:
        """How many rows were spilled."""
        return int(self.rows_per_part.sum())

    def append_arrow(self, data: pa.Table, parts: npt.NDArray[np.int64]) -> None:
        """Spill rows (in the spill's schema), each to its part (0..PARTS-1)."""
        if data.num_rows == 0:
            return
        order = np.argsort(parts, kind="stable")
        batch = data.take(pa.array(order)).combine_chunks().to_batches()[0]
        counts = np.bincount(parts, minlength=PARTS)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        index = np.full(PARTS, -1, dtype=np.int64)
        path = self.folder / f"c{len(self._chunks):05d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, self.schema) as writer:
            for i, part in enumerate(np.flatnonzero(counts)):
                writer.write_batch(batch.slice(int(starts[part]), int(counts[part])))
                index[part] = i
        self._chunks.append((path, index))
        self.rows_per_part += counts

    def read_arrow(self, parts: range, columns: Iterable[str] | None = None) -> pa.Table:
        """The spilled rows of some parts as Arrow: chunk by chunk, part by part."""
        names = list(columns) if columns is not None else self.schema.names
        tables = []
        for path, index in self._chunks:
            wanted = [int(index[p]) for p in parts if index[p] >= 0]
            if not wanted:
                continue
            with pa.memory_map(str(path)) as source:
                reader = pa.ipc.open_file(source)
                batches = [reader.get_batch(i).select(names) for i in wanted]
                tables.append(pa.Table.from_batches(batches).combine_chunks())  # copied out
        if not tables:
            return pa.schema([self.schema.field(c) for c in names]).empty_table()
        return pa.concat_tables(tables)


class TableSpill(Spill):
    """One table's staged rows on disk, by customer bucket, numbered in source order."""

    def __init__(self, folder: Path, table: Table) -> None:
        self.table = table
        self._columns = [c.name for c in table.columns] + list(BOOKKEEPING)
        self._base = pa.schema(list(spill_schema(table))[:-2])  # what a staged frame gives
        self._dtypes = {
            **{c.name: pandas_dtype(c.type) for c in table.columns},
            **{name: "string" for name in BOOKKEEPING},
        }
        super().__init__(folder, spill_schema(table))

    @property
    def rows_per_bucket(self) -> npt.NDArray[np.int64]:
        """Rows spilled per customer bucket."""
        return self.rows_per_part

    def append(self, staged: pd.DataFrame, buckets: npt.NDArray[np.int64]) -> None:
        """Spill one staged (typed) chunk, each row with its bucket, numbered after the rows before it."""
        n = len(staged)
        if n == 0:
            return
        base = pa.Table.from_pandas(staged[self._columns], schema=self._base, preserve_index=False)
        data = base.append_column(SEQ, pa.array(np.arange(self.rows, self.rows + n))).append_column(
            BUCKET, pa.array(buckets.astype(np.int16))
        )
        self.append_arrow(data, buckets)

    def read(self, buckets: range) -> pd.DataFrame:
        """The spilled rows of some buckets as a staged frame (in-memory dtypes), in source order."""
        data = self.read_arrow(buckets)
        data = data.take(pc.sort_indices(data[SEQ]))
        frame = data.to_pandas(types_mapper=_pandas_type)
        return frame.astype(self._dtypes | {SEQ: "int64", BUCKET: "int64"})


# A polynomial hash of the bytes of each value, modulo 2**64, finished by splitmix64: fast
# with numpy on Arrow buffers. It only decides which key partition a key is counted in;
# keys are then compared exactly, so a collision costs nothing but company.
_PRIME: Final = 0x100000001B3
_INVERSE: Final = pow(_PRIME, -1, 1 << 64)


def _mix(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finalizer: every input bit moves every output bit."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def _text_hash(values: pa.Array) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of each (non-null) text value, independent of where it sits in its buffer."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    values = values.cast(pa.large_string())
    _, offsets_buffer, data_buffer = values.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[values.offset : values.offset + n + 1]
    lo, hi = int(offsets[0]), int(offsets[-1])
    raw = np.zeros(0, dtype=np.uint8)
    if data_buffer is not None and hi > lo:
        raw = np.frombuffer(data_buffer, dtype=np.uint8)[lo:hi]
    at = offsets - lo
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(len(raw), _PRIME, dtype=np.uint64))  # P**1 .. P**len
        sums = np.zeros(len(raw) + 1, dtype=np.uint64)
        np.cumsum((raw.astype(np.uint64) + np.uint64(1)) * powers, out=sums[1:])
        inverse = np.ones(len(raw) + 1, dtype=np.uint64)
        np.cumprod(np.full(len(raw), _INVERSE, dtype=np.uint64), out=inverse[1:])
        h = (sums[at[1:]] - sums[at[:-1]]) * inverse[at[:-1]]  # sum of (byte+1) * P**(i+1)
        return _mix(h + np.diff(at).astype(np.uint64))


def key_hash(columns: Iterable[pa.Array]) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of each row of some non-null key columns (text or timestamps)."""
    out: npt.NDArray[np.uint64] | None = None
    for values in columns:
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            h = _text_hash(values)
        else:
            h = _mix(values.cast(pa.int64()).to_numpy(zero_copy_only=False).view(np.uint64))
        with np.errstate(over="ignore"):
            out = h if out is None else _mix(out * np.uint64(_PRIME) + h)
    assert out is not None
    return out


def key_part(hashes: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """The key partition (0..PARTS-1) of each key hash: its top bits."""
    return (hashes >> np.uint64(56)).astype(np.int64)


class Router:
    """The customer bucket of every staged row, as :func:`shadowbill.snapshot.buckets.row_buckets` gives.

    Subscriptions and invoices are remembered (id and bucket, in source order) as they are
    spilled, so that their children, read later, follow them; a child whose parent is
    unknown is hashed by the parent id itself. With duplicated ids the first copy leads.
    """

    def __init__(self) -> None:
        self._ids: dict[str, list[pa.Array]] = {"subscriptions": [], "invoices": []}
        self._buckets: dict[str, list[npt.NDArray[np.int64]]] = {
            "subscriptions": [],
            "invoices": [],
        }
        self._index: dict[str, tuple[pd.Index, npt.NDArray[np.int64]]] = {}

    def reset(self, parent: str) -> None:
        """Forget a parent table (read again from the start)."""
        if parent in self._ids:
            self._ids[parent], self._buckets[parent] = [], []
            self._index.pop(parent, None)

    def remember(self, parent: str, frame: pd.DataFrame, buckets: npt.NDArray[np.int64]) -> None:
        """Remember where the rows of a parent table (subscriptions, invoices) went."""
        key = TABLES[parent].key[0]
        self._ids[parent].append(_own(_text(frame[key])))
        self._buckets[parent].append(buckets)
        self._index.pop(parent, None)

    def _parent(self, parent: str) -> tuple[pd.Index, npt.NDArray[np.int64]]:
        """The parent's ids (first copies) as an index whose hash table is built once."""
        if parent not in self._index:
            chunks = self._ids[parent]
            ids = pa.concat_arrays(chunks) if chunks else pa.array([], type=pa.string())
            buckets = self._buckets[parent]
            held = np.concatenate(buckets) if buckets else np.zeros(0, dtype=np.int64)
            index = pd.Index(pd.array(ids, dtype=pd.ArrowDtype(pa.string())))
            first = ~index.duplicated(keep="first")
            self._index[parent] = (index[first], held[first])
        return self._index[parent]

    def lookup(
        self, parent: str, keys: pd.Series
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """The bucket of each key's parent row (first copy), and which keys have one."""
        index, buckets = self._parent(parent)
        at = index.get_indexer(pd.array(_text(keys), dtype=pd.ArrowDtype(pa.string())))
        found = at >= 0
        out = np.zeros(len(keys), dtype=np.int64)
        out[found] = buckets[at[found]]
        return out, found

    def buckets(self, name: str, frame: pd.DataFrame) -> npt.NDArray[np.int64]:
        """The bucket of every row of one staged chunk of a customer table."""
        column, via = ROUTES[name]
        keys = frame[column]
        if via is None:
            return bucket_of(keys)
        out, found = self.lookup(via, keys)
        if not found.all():
            out[~found] = bucket_of(keys[~found])
        return out


class KeyLog:
    """The complete keys of the tables whose duplicates can span buckets, spilled by key hash.

    All copies of a key share a key partition, so duplicates are counted exactly one key
    partition group at a time: memory is bounded by the group, not by the table. Item rows
    go by the hash of their item id alone, so the buckets of an item's rows are found
    together too.
    """

    def __init__(self, folder: Path, group_rows: int) -> None:
        self.group_rows = group_rows
        self.spills: dict[str, Spill] = {}
        for name in GLOBAL_KEYS:
            table = TABLES[name]
            fields = [pa.field(k, table.column(k).type) for k in table.key]
            if name == "subscription_items":
                fields.append(pa.field(BUCKET, pa.int16()))
            self.spills[name] = Spill(Path(folder) / name, pa.schema(fields))

    def reset(self, name: str) -> None:
        """Forget a table's keys (read again from the start)."""
        if name in self.spills:
            self.spills[name].reset()

    def add(self, name: str, frame: pd.DataFrame, buckets: npt.NDArray[np.int64]) -> None:
        """Spill the complete keys of one staged (typed) chunk (with their buckets, for items)."""
        spill = self.spills.get(name)
        if spill is None:
            return
        table = TABLES[name]
        complete = frame[list(table.key)].notna().all(axis=1).to_numpy()
        columns = {
            k: pa.array(frame.loc[complete, k], type=table.column(k).type, from_pandas=True)
            for k in table.key
        }
        if name == "subscription_items":
            columns[BUCKET] = pa.array(buckets[complete].astype(np.int16))
            hashes = key_hash([columns["item_id"]])
        else:
            hashes = key_hash([columns[k] for k in table.key])
        spill.append_arrow(pa.table(columns, schema=spill.schema), key_part(hashes))

    def _counted(self, name: str, by: list[str], aggregate: tuple[Any, str]) -> list[pa.Table]:
        """group_by(by).aggregate over each key partition group of a table."""
        spill = self.spills[name]
        out = []
        for group in plan_groups(spill.rows_per_part, self.group_rows):
            data = spill.read_arrow(group)
            if data.num_rows:
                out.append(data.group_by(by, use_threads=False).aggregate([aggregate]))
        return out

    def duplicates(self) -> dict[str, pd.DataFrame]:
        """Table -> every key that appears more than once, with its number of copies."""
        found: dict[str, pd.DataFrame] = {}
        for name in GLOBAL_KEYS:
            table = TABLES[name]
            keys = list(table.key)
            parts = []
            for counted in self._counted(name, keys, ([], "count_all")):
                counted = counted.rename_columns([*keys, "copies"])
                parts.append(counted.filter(pc.greater(counted["copies"], 1)))
            empty = {k: pa.array([], type=table.column(k).type) for k in keys}
            data = (
                pa.concat_tables(parts)
                if parts
                else pa.table(empty | {"copies": pa.array([], pa.int64())})
            )
            frame = data.to_pandas(types_mapper=_pandas_type)
            found[name] = frame.astype(
                {k: pandas_dtype(table.column(k).type) for k in keys} | {"copies": "int64"}
            )
        return found

    def spanning_items(self) -> pd.Series:
        """Item ids whose (complete-keyed) rows lie in more than one bucket."""
        chunks = []
        for spread in self._counted("subscription_items", ["item_id"], (BUCKET, "count_distinct")):
            many = spread.filter(pc.greater(spread[f"{BUCKET}_count_distinct"], 1))
            chunks += many["item_id"].chunks
        ids = pa.chunked_array(chunks, type=pa.string())
        return pd.Series(ids.to_pandas(types_mapper=_pandas_type), dtype="string")


def plan_groups(rows_per_part: npt.NDArray[np.int64], budget: int) -> list[range]:
    """Contiguous part ranges of at most ``budget`` rows each (a bigger part stands alone)."""
    groups: list[range] = []
    start, held = 0, 0
    for part in range(PARTS):
        rows = int(rows_per_part[part])
        if part > start and held + rows > budget:
            groups.append(range(start, part))
            start, held = part, 0
        held += rows
    groups.append(range(start, PARTS))
    return groups


def spill_tables(folder: Path) -> Mapping[str, TableSpill]:
    """A fresh spill for every customer table under ``folder``."""
    return {name: TableSpill(folder / name, TABLES[name]) for name in ROUTES}
