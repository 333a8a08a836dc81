"""Domain errors → gRPC status: bounded texts, retry hints, no internals."""

from __future__ import annotations

from google.rpc import code_pb2, error_details_pb2

from designsearch import errors
from designsearch.server import status_for


def test_messages_and_fields_are_bounded():
    exc = errors.InvalidArgument("unknown design " + "x" * 100_000, field="design." + "y" * 10_000)
    st = status_for(exc)
    assert len(st.message) <= errors.DesignSearchError.MAX_MESSAGE and st.message.endswith("chars]")
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in st.details)
    assert len(bad.field_violations[0].field) <= errors.DesignSearchError.MAX_FIELD
    assert len(st.SerializeToString()) < 3_000  # fits easily in a gRPC trailer


def test_rate_limit_and_unavailable_carry_retry_info():
    for exc, code in [(errors.ResourceExhausted("slow down", retry_after_s=0.25), code_pb2.RESOURCE_EXHAUSTED),
                      (errors.BackendUnavailable("down", retry_after_s=2), code_pb2.UNAVAILABLE)]:
        st = status_for(exc)
        retry = error_details_pb2.RetryInfo()
        assert st.code == code and any(d.Unpack(retry) for d in st.details)
        assert retry.retry_delay.ToMilliseconds() == int(exc.retry_after_s * 1000)


def test_json_logs_carry_the_exception_type_message_and_traceback():
    import json
    import subprocess
    import sys

    code = ("from designsearch.logs import configure_logging, get_logger\n"
            "configure_logging('INFO', True)\n"
            "try:\n    1 / 0\nexcept ZeroDivisionError:\n    get_logger('t').exception('rpc_internal_error')\n")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    line = json.loads(err.strip().splitlines()[-1])
    exc = line["exception"][0]
    assert (exc["exc_type"], exc["exc_value"]) == ("ZeroDivisionError", "division by zero") and exc["frames"]
