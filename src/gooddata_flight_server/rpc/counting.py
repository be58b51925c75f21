"""Counting the Arrow data a call moves, for the ``gdfs_rpc_*_rows``/``_bytes`` metrics.

Counting happens per record batch from metadata pyarrow already has (``num_rows``, ``nbytes``);
no data is touched or copied. Streams that pyarrow builds from opaque sources (a user's
``RecordBatchStream``) cannot be seen from Python and are not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow
import pyarrow.flight

__all__ = ["CountingReader", "counted_batches", "counted_reader"]

Count = Callable[[int, int], None]


def counted_batches(batches: Iterable[Any], count: Count) -> Iterator[Any]:
    """Yield the batches (or tables) of a GeneratorStream source, counting each."""
    for item in batches:
        data = item[0] if isinstance(item, tuple) else item
        if isinstance(data, (pyarrow.RecordBatch, pyarrow.Table)):
            count(data.num_rows, data.nbytes)
        yield item


def counted_reader(reader: pyarrow.RecordBatchReader, count: Count) -> pyarrow.RecordBatchReader:
    """A reader over the same batches that counts them as they stream."""
    return pyarrow.RecordBatchReader.from_batches(reader.schema, counted_batches(reader, count))


class CountingReader:
    """Stands in for the ``MetadataRecordBatchReader`` of DoPut/DoExchange and counts what is read.

    The methods that return data are counted; everything else is the wrapped reader's, and
    ``isinstance`` checks see the wrapped reader's class. A C++ consumer that needs the real reader
    object finds it in ``.reader``.
    """

    __slots__ = ("_count", "reader")

    def __init__(self, reader: pyarrow.flight.MetadataRecordBatchReader, count: Count) -> None:
        self.reader = reader
        self._count = count

    def __getattr__(self, name: str) -> Any:
        return getattr(self.reader, name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        # isinstance(reader, MetadataRecordBatchReader) keeps answering as it does with metrics off
        return type(self.reader)

    def read_chunk(self) -> Any:
        chunk = self.reader.read_chunk()
        if chunk.data is not None:
            self._count(chunk.data.num_rows, chunk.data.nbytes)
        return chunk

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                yield self.read_chunk()
            except StopIteration:
                return

    def read_all(self) -> pyarrow.Table:
        table = self.reader.read_all()
        self._count(table.num_rows, table.nbytes)
        return table

    def read_pandas(self, **options: Any) -> Any:
        return self.read_all().to_pandas(**options)

    def to_reader(self) -> pyarrow.RecordBatchReader:
        return counted_reader(self.reader.to_reader(), self._count)
