"""Reading what a client uploads with a Flight SQL DoPut (parameters, rows to ingest)."""

from __future__ import annotations

import pyarrow
import pyarrow.flight

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.flightsql._errors import bad_request
from gooddata_flight_server.rpc.call import CALL_INFO_KEY

__all__ = ["read_upload"]


def read_upload(
    context: pyarrow.flight.ServerCallContext, reader: pyarrow.flight.MetadataRecordBatchReader, what: str
) -> pyarrow.Table | None:
    """Everything the client uploads, read in full; None when it sent no columns (or no data at all:
    a DoPut of the descriptor alone, as clients send a prepared update without parameters).

    A client that went away mid-stream ends the reader as if the stream were complete; that is
    noticed here, before anything acts on a partial upload.
    """
    try:
        table = reader.read_all()
    except OSError as e:  # pyarrow's IO errors; an upload of the descriptor alone is one too
        if "never sent a data message" in str(e):
            return None
        raise bad_request(f"Cannot read {what}: {e}") from None
    except pyarrow.ArrowInvalid as e:
        raise bad_request(f"Cannot read {what}: {e}") from None
    call = context.get_middleware(CALL_INFO_KEY)
    if call is not None:  # the server's own read: counted into gdfs_rpc_received_rows/bytes
        call.count_received(table.num_rows, table.nbytes)
    if context.is_cancelled():
        raise ErrorInfo.for_reason(
            ErrorCode.COMMAND_CANCELLED, f"The upload of {what} was interrupted; nothing was done."
        ).to_cancelled_error()
    return table if table.num_columns else None
