"""Error bodies as gateways and proxies in front of an engine write them, not as vLLM does.

* ``502``: an upstream failure with the ids every such body carries (a request id, a trace
  id, an edge ray id, a timestamp), new in each response, so no two failures read the same.
* ``echo_401``: a misconfigured auth gateway that answers a 401 quoting the request's
  ``Authorization`` header back, and the bare token once more in its message.
"""

from __future__ import annotations

import os
import time
import uuid

import orjson

__all__ = ["bad_gateway_body", "echo_unauthorized_body"]


def bad_gateway_body() -> bytes:
    """A 502's JSON body whose ids and timestamp are unique to this response."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e3):03d}Z"
    return orjson.dumps(
        {
            "error": {
                "message": "upstream connect error or disconnect/reset before headers. "
                f"request id {uuid.uuid4()}",
                "type": "bad_gateway",
                "code": 502,
            },
            "request_id": f"req_{os.urandom(12).hex()}",
            "trace_id": os.urandom(16).hex(),
            "cf_ray": f"{os.urandom(8).hex()}-SJC",
            "timestamp": stamp,
            "upstream_time_ms": int.from_bytes(os.urandom(3), "big"),
        }
    )


def echo_unauthorized_body(authorization: bytes | None) -> bytes:
    """A 401 quoting the request's own credentials, as a gateway logging too much does."""
    header = (authorization or b"").decode("latin-1")
    token = header.split()[-1] if header.split() else ""
    return orjson.dumps(
        {
            "error": {
                "message": f"invalid API key '{token}'",
                "type": "authentication_error",
                "code": 401,
            },
            "request": {"headers": {"authorization": header}},
        }
    )
